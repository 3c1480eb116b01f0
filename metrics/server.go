package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves GET /metrics (Prometheus text format) on one address.
// Create it with Listen; it is safe for concurrent use.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Probes are the health endpoints' answers: GET /healthz calls Live and
// GET /readyz calls Ready; nil or a nil error answers 200 "ok", an error
// answers 503 with the error's text. They run on the scraping goroutine
// and must be safe for concurrent use.
type Probes struct {
	Live, Ready func() error
}

// Listen binds addr (ip:port; port 0 picks a free one) now, so that a busy
// or forbidden address is an error at startup, and serves g's metrics on
// /metrics in a goroutine until Shutdown. "/" answers with a pointer to
// /metrics, for humans; /healthz and /readyz always answer 200.
func Listen(addr string, g prometheus.Gatherer) (*Server, error) {
	return ListenProbes(addr, g, Probes{})
}

// ListenProbes is Listen with /healthz and /readyz answered by p.
func ListenProbes(addr string, g prometheus.Gatherer, p Probes) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.HTTPErrorOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "mflow: metrics at /metrics, health at /healthz and /readyz")
	})
	mux.HandleFunc("GET /healthz", probe(p.Live))
	mux.HandleFunc("GET /readyz", probe(p.Ready))
	s := &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      20 * time.Second,
			IdleTimeout:       60 * time.Second,
		},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the http URL of the server's /metrics.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/metrics" }

// Shutdown stops accepting scrapes, waits (until ctx ends) for running ones
// and returns the error that ended serving, if any.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
		return fmt.Errorf("shutting down metrics server: %w", err)
	}
	if err := <-s.done; err != nil {
		return fmt.Errorf("serving metrics: %w", err)
	}
	return nil
}

// probe answers a health endpoint from fn.
func probe(fn func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if fn != nil {
			if err := fn(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	}
}
