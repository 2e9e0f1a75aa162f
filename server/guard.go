package server

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// hostGuard keeps web pages from driving the engine. A page can make a
// browser send requests to 127.0.0.1 in two ways: by rebinding its own
// host name to 127.0.0.1 (DNS rebinding: the browser then sends Host:
// evil.example and lets the page read the answers), and by submitting a
// cross-origin "simple" POST (text/plain, a form, or no content type at
// all), which the browser sends without asking first. The first is refused
// by checking Host, the second by checking Origin.
type hostGuard struct {
	// checkHost is on when bound to loopback, or when hosts are listed.
	checkHost bool
	hosts     []hostPort
	origins   map[string]bool // normalised scheme://host[:port]
}

// hostPort is a host name or IP, lower-case, and a port ("" for any).
type hostPort struct{ host, port string }

func newHostGuard(bindHost string, allowedHosts, allowedOrigins []string) hostGuard {
	g := hostGuard{checkHost: isLoopbackName(bindHost) || len(allowedHosts) > 0, origins: map[string]bool{}}
	for _, h := range allowedHosts {
		g.hosts = append(g.hosts, splitHost(h))
	}
	for _, o := range allowedOrigins {
		g.origins[normaliseOrigin(o)] = true
	}
	return g
}

// isLoopbackName says whether a bind address or host name stays on this
// machine. The empty bind address is the default, 127.0.0.1.
func isLoopbackName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// splitHost splits a Host header (or an allowed_hosts entry) into name and
// port, with or without a port and with or without IPv6 brackets.
func splitHost(s string) hostPort {
	s = strings.ToLower(strings.TrimSpace(s))
	if h, p, err := net.SplitHostPort(s); err == nil {
		return hostPort{strings.TrimSuffix(h, "."), p}
	}
	return hostPort{strings.TrimSuffix(strings.Trim(s, "[]"), "."), ""}
}

// hostAllowed says whether a Host header (or an Origin's host) names this
// machine: localhost or a loopback IP (any port), or an allowed_hosts entry
// (its port, if it gives one).
func (g hostGuard) hostAllowed(host string) bool {
	hp := splitHost(host)
	if isLoopbackName(hp.host) && hp.host != "" {
		return true
	}
	for _, a := range g.hosts {
		if a.host == hp.host && (a.port == "" || a.port == hp.port) {
			return true
		}
	}
	return false
}

// check returns nil for a request that may go on, or the error to answer.
// The reason names the metric label.
func (g hostGuard) check(r *http.Request) (reason string, err error) {
	// An empty Host (HTTP/1.0) cannot come from a browser.
	if g.checkHost && r.Host != "" && !g.hostAllowed(r.Host) {
		return "host", errorf(http.StatusForbidden,
			"host %q is not served here: this server answers only to localhost, 127.0.0.1, [::1]%s; add the name to server.allowed_hosts to serve it (this check stops DNS-rebinding web pages)",
			r.Host, g.listedHosts())
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return "", nil
	}
	origin := r.Header.Get("Origin")
	if origin == "" || g.originAllowed(origin, r.Host) {
		return "", nil
	}
	return "origin", errorf(http.StatusForbidden,
		"cross-origin %s from %q refused: a web page may not call this server; add the origin to server.allowed_origins to allow it",
		r.Method, origin)
}

// originAllowed: the same origin as the request, a page served from this
// machine (or an allowed host), or one of allowed_origins.
func (g hostGuard) originAllowed(origin, host string) bool {
	if g.origins[normaliseOrigin(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false // "null" (sandboxed frames, file://) among others
	}
	return strings.EqualFold(u.Host, host) || g.hostAllowed(u.Host)
}

func (g hostGuard) listedHosts() string {
	if len(g.hosts) == 0 {
		return ""
	}
	names := make([]string, len(g.hosts))
	for i, h := range g.hosts {
		switch {
		case h.port != "":
			names[i] = net.JoinHostPort(h.host, h.port)
		case strings.Contains(h.host, ":"):
			names[i] = "[" + h.host + "]"
		default:
			names[i] = h.host
		}
	}
	return ", " + strings.Join(names, ", ")
}

func normaliseOrigin(o string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
}
