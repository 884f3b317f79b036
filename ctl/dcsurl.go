package ctl

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DCSURL is a parsed -d/--dcs-url value: DCS://HOST:PORT[,HOST:PORT...]/NAMESPACE.
type DCSURL struct {
	Scheme    string   // etcd3 (etcd is read as etcd3: tusker speaks etcd v3 only), consul, zookeeper or kubernetes
	Hosts     []string // host:port
	Namespace string   // "" keeps the configured namespace
}

// errUnsupportedDCS: the URL names a DCS patronictl knows and tusker does not speak.
var errUnsupportedDCS = errors.New("is not supported by tusker (supported: etcd3, consul, zookeeper, kubernetes)")

// Default client ports of the DCSs patronictl knows; a URL without a scheme picks the DCS by its
// port, as patronictl does, and falls back to etcd.
var dcsPorts = []struct {
	scheme string
	port   int
}{
	{"zookeeper", 2181}, {"exhibitor", 8181}, {"consul", 8500}, {"etcd", 2379}, {"etcd3", 2379},
	{"kubernetes", 0},
}

// ParseDCSURL parses patronictl's --dcs-url. Besides patronictl's single host it accepts a
// comma-separated list of hosts, since etcd and ZooKeeper clusters have several endpoints.
// Exhibitor, which tusker does not speak, is recognised and refused with that reason, not as
// unknown. kubernetes:// takes no host: the API server comes from the pod or the kubeconfig.
func ParseDCSURL(s string) (*DCSURL, error) {
	raw := strings.TrimSpace(s)
	if raw == "" {
		return nil, fmt.Errorf("empty DCS URL")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", strings.TrimPrefix(raw, "//")
	}
	scheme = strings.ToLower(scheme)
	hostPart, path, _ := strings.Cut(rest, "/")
	u := &DCSURL{}
	if ns := strings.TrimSpace(path); ns != "" {
		u.Namespace = "/" + strings.Trim(ns, "/")
	}
	var hosts []string
	var ports []int // 0: not given, the DCS's default port is filled in below
	for h := range strings.SplitSeq(hostPart, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		host, port, err := splitHostPortOpt(h)
		if err != nil {
			return nil, fmt.Errorf("DCS URL %q: %w", s, err)
		}
		hosts, ports = append(hosts, host), append(ports, port)
	}
	if scheme == "" {
		scheme = "etcd"
		if len(ports) > 0 && ports[0] != 0 {
			for _, d := range dcsPorts {
				if d.port == ports[0] {
					scheme = d.scheme
					break
				}
			}
		}
	}
	known := false
	defPort := 0
	for _, d := range dcsPorts {
		if d.scheme == scheme {
			known, defPort = true, d.port
		}
	}
	if !known {
		return nil, fmt.Errorf("DCS URL %q: unknown DCS scheme %q (tusker speaks etcd3, consul, zookeeper and kubernetes; etcd is read as etcd3)", s, scheme)
	}
	switch scheme {
	case "exhibitor":
		return nil, fmt.Errorf("DCS URL %q: %s %w", s, scheme, errUnsupportedDCS)
	case "etcd":
		scheme = "etcd3"
	case "kubernetes":
		u.Scheme = scheme
		return u, nil
	}
	u.Scheme = scheme
	if len(hosts) == 0 {
		hosts, ports = []string{"localhost"}, []int{0}
	}
	for i, h := range hosts {
		p := ports[i]
		if p == 0 {
			p = defPort
		}
		u.Hosts = append(u.Hosts, h+":"+strconv.Itoa(p))
	}
	return u, nil
}

// splitHostPortOpt splits "host", "host:port", "[v6]" or "[v6]:port"; a missing port is 0.
func splitHostPortOpt(s string) (string, int, error) {
	if strings.HasPrefix(s, "[") {
		if end := strings.Index(s, "]"); end > 0 && end == len(s)-1 {
			return s, 0, nil
		}
	} else if !strings.Contains(s, ":") {
		return s, 0, nil
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("host %q: %w", s, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("host %q: port %q is not a number between 1 and 65535", s, p)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if host == "" {
		host = "localhost"
	}
	return host, port, nil
}
