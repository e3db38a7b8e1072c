// Placeholder until the echo server is written.
import CLive
print(String(cString: clive_strerror(0)))
