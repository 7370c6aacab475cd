"""How an error reads in one line: the package's messages that quote another error use this."""


def first_line(error: Exception) -> str:
  """`Type: first line of the message` of an error, short enough for a one-line message."""
  text = str(error).strip().splitlines()[0] if str(error).strip() else ""
  text = f"{type(error).__name__}: {text}" if text else type(error).__name__
  return text if len(text) <= 160 else text[:157] + "..."
