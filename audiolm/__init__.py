"""Audio language models: transformer core, token layouts, AudioLM / VALL-E / MusicGen stages."""
