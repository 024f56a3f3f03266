// The output an execution produces, cut into live-output chunks, and the tail of it that the
// ExecuteResponse carries (PLUGIN_PROTOCOL.md §3).
package main

const (
	// Live output goes in chunks of 64-256 KiB: one Update per line could not keep up.
	chunkBytes = 64 * 1024
	// ExecuteResponse.output is the tail of the output, capped at 256 KiB as Dkron's.
	outputTailBytes = 256 * 1024
)

// outputChunks calls emit with the output in chunks of at most chunkBytes: the message line
// once, or repeated (and cut) to exactly repeatBytes bytes. It stops early when emit says so.
func outputChunks(config jobConfig, emit func(chunk []byte) bool) {
	line := []byte(config.message + "\n")
	if !config.repeat {
		for start := 0; start < len(line); start += chunkBytes {
			if !emit(line[start:min(start+chunkBytes, len(line))]) {
				return
			}
		}
		return
	}
	// The line repeated over chunkBytes plus one line: every chunk is a slice of it, starting
	// where the previous chunk stopped within the line.
	pattern := make([]byte, 0, chunkBytes+len(line))
	for len(pattern) < chunkBytes+len(line) {
		pattern = append(pattern, line...)
	}
	for produced := int64(0); produced < config.repeatBytes; {
		size := int(min64(chunkBytes, config.repeatBytes-produced))
		start := int(produced % int64(len(line)))
		// Each chunk is a fresh copy: the tail keeps chunks after emit returns.
		chunk := append([]byte(nil), pattern[start:start+size]...)
		if !emit(chunk) {
			return
		}
		produced += int64(size)
	}
}

// tail keeps the last `limit` bytes of everything added.
type tail struct {
	limit  int
	chunks [][]byte
	size   int
}

func (t *tail) add(chunk []byte) {
	t.chunks = append(t.chunks, chunk)
	t.size += len(chunk)
	for len(t.chunks) > 1 && t.size-len(t.chunks[0]) >= t.limit {
		t.size -= len(t.chunks[0])
		t.chunks = t.chunks[1:]
	}
}

func (t *tail) bytes() []byte {
	all := make([]byte, 0, t.size)
	for _, chunk := range t.chunks {
		all = append(all, chunk...)
	}
	if len(all) > t.limit {
		all = all[len(all)-t.limit:]
	}
	return all
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}
