package proxy

import (
	"context"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/accesslog"
)

// upgrade splices the client connection and the upstream connection after
// a 101 Switching Protocols (WebSocket and other HTTP/1.1 upgrades).
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
		n, _ := io.Copy(back, brw.Reader)
		if cw, ok := back.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		received <- n
	}()
	n, err := io.Copy(conn, back)
	ex.entry.BytesSent += n
	if err != nil {
		ex.h.log.Debug("upgraded connection ended", zap.Error(err))
	}
	// Upstream finished: end the client side too, then collect the other
	// direction.
	conn.Close()
	ex.entry.BytesReceived += <-received
}
