"""Built-in corpora: synthetic speech (espeak-ng) and rendered music (General MIDI)."""
