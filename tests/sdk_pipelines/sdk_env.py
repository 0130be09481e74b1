"""What the Node and browser SDK tests share: the emulator's write key."""

WRITE_KEY = "my-legacy-write-key"
