"""What runs the engine locally: the emulator stack, the fake Gemini server, the demo."""
