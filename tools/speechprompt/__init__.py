"""SpeechPrompt: prompt tuning of frozen unit language models, as small Unix tools."""
__version__ = "0.1.0"
