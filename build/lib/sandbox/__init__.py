"""Local stand-ins for the outside world (Telegram, FAL) and the embedded servers."""
