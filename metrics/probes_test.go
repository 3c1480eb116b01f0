package metrics

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestProbes(t *testing.T) {
	var ready error = errors.New("not ready: device mflow42 is down")
	s, err := ListenProbes("127.0.0.1:0", NewRegistry(func() Snapshot { return Snapshot{} }),
		Probes{Live: func() error { return nil }, Ready: func() error { return ready }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "mflow42 is down") {
		t.Errorf("/readyz while not ready: %d %q; want 503 with the reason", code, body)
	}
	ready = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz when ready: %d", code)
	}
}
