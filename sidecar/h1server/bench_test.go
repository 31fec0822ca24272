package h1server

import (
	"bufio"
	"net"
	"net/http"
	"testing"
)

// BenchmarkServe: one keep-alive GET and its 1 KiB response over loopback,
// the handler writing a Content-Length and the body; the client is raw
// bytes, so allocs/op are the server's (net/http's client would add its
// own). Against net/http's server with
// -bench 'Serve' the two sub-benchmarks compare them.
func BenchmarkServe(b *testing.B) {
	body := make([]byte, 1024)
	length := []string{"1024"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = length
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
	b.Run("h1server", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := &Server{Handler: h}
		go s.Serve(ln)
		defer s.Close()
		benchClient(b, ln.Addr().String())
	})
	b.Run("net/http", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := &http.Server{Handler: h}
		go s.Serve(ln)
		defer s.Close()
		benchClient(b, ln.Addr().String())
	})
}

func benchClient(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 8<<10)
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: raw\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		// Headers up to the blank line, then the announced length.
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) <= 2 {
				break
			}
			if len(line) > 16 && string(line[:16]) == "Content-Length: " {
				n = 0
				for _, d := range line[16 : len(line)-2] {
					n = n*10 + int(d-'0')
				}
			}
		}
		if n < 0 {
			b.Fatal("no Content-Length")
		}
		if _, err := br.Discard(n); err != nil {
			b.Fatal(err)
		}
	}
}
