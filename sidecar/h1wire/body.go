package h1wire

import (
	"bufio"
	"bytes"
	"io"
)

// ParseChunkSize parses a chunk-size line (RFC 9112 section 7.1) without
// its line ending: hexadecimal digits, whitespace around them tolerated,
// chunk extensions ignored. At most 15 digits, so that the size fits an
// int64; false when the line is malformed.
func ParseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i] // chunk extensions are ignored
	}
	line = TrimOWS(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var size int64
	for _, d := range line {
		switch {
		case '0' <= d && d <= '9':
			d -= '0'
		case 'a' <= d && d <= 'f':
			d -= 'a' - 10
		case 'A' <= d && d <= 'F':
			d -= 'A' - 10
		default:
			return 0, false
		}
		size = size<<4 | int64(d)
	}
	return size, true
}

// ReadData reads body data into p, at most *left bytes, and takes what it
// read off *left. Its error is br's. It is at the inliner's budget (cost
// 80, go build -gcflags=-m=2): a fixed-length or chunked body's every Read
// goes through it, so keep it that small.
func ReadData(br *bufio.Reader, p []byte, left *int64) (int, error) {
	n, err := br.Read(p[:min(int64(len(p)), *left)])
	*left -= int64(n)
	return n, err
}

// Unexpected is err, but io.ErrUnexpectedEOF for io.EOF: for an end of
// the connection in the middle of a message.
func Unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
