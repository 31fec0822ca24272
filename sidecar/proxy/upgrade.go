package proxy

import (
	"context"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/accesslog"
)

// upgrade splices the client connection and the upstream connection after
// a 101 Switching Protocols (WebSocket and other HTTP/1.1 upgrades). The
// route timeout ends with the 101 (a WebSocket lives longer than a
// request); the stream idle timeout keeps applying: bytes either way count
// as activity, and an idle session is closed.
func (ex *exchange) upgrade(res *http.Response) {
	back, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		res.Body.Close()
		ex.localReply(http.StatusBadGateway, accesslog.UpstreamProtocolError, "upstream upgrade failed")
		return
	}
	conn, brw, err := http.NewResponseController(ex.w).Hijack()
	if err != nil {
		back.Close()
		ex.localReply(http.StatusBadGateway, accesslog.UpstreamProtocolError, "upgrade needs HTTP/1.1 downstream")
		return
	}
	ex.h.upgrades.Add(1)
	defer ex.h.upgrades.Done()
	ex.entry.Status = http.StatusSwitchingProtocols
	stop := context.AfterFunc(ex.h.ctx, func() {
		conn.Close()
		back.Close()
	})
	defer stop()
	defer conn.Close()
	defer back.Close()
	// The route timeout ended with the 101; the idle timeout goes on.
	ex.g.endRoute()
	g := ex.g
	stopIdle := context.AfterFunc(g, func() {
		if g.Cause() == errStreamIdle {
			conn.Close()
			back.Close()
		}
	})
	defer stopIdle()

	hdr := http.Header{}
	copyHeader(hdr, res.Header)
	hdr["Connection"] = []string{"Upgrade"}
	hdr["Upgrade"] = []string{res.Header.Get("Upgrade")}
	out := &http.Response{StatusCode: http.StatusSwitchingProtocols, ProtoMajor: 1, ProtoMinor: 1, Header: hdr}
	if err := out.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	received := make(chan int64, 1)
	go func() {
		// brw.Reader first: it may hold bytes the client sent early.
		n, _ := io.Copy(back, touchReader{r: brw.Reader, g: ex.g})
		if cw, ok := back.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		received <- n
	}()
	n, err := io.Copy(conn, touchReader{r: back, g: ex.g})
	ex.entry.BytesSent += n
	if err != nil {
		ex.h.log.Debug("upgraded connection ended", zap.Error(err))
	}
	// Upstream finished: end the client side too, then collect the other
	// direction.
	conn.Close()
	ex.entry.BytesReceived += <-received
}

// touchReader records activity for the idle timeout on every read.
type touchReader struct {
	r io.Reader
	g *guard
}

func (t touchReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.g.touch()
	}
	return n, err
}
