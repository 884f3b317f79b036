package config

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Consul is the "consul" section (Patroni's keys).
type Consul struct {
	Host   string // host[:port], default 127.0.0.1:8500
	URL    string // http(s)://host:port; overrides host, port and scheme
	Port   int    // used when host has no port
	Scheme string // http (default) or https
	Token  string
	Verify *bool // verify the agent's certificate (default true)
	CACert string
	Cert   string
	Key    string
	DC     string
	// Consistency of reads: default, consistent or stale.
	Consistency string
	// Checks are extra session health checks (Patroni's default: none besides the TTL).
	Checks                    []string
	RegisterService           bool
	ServiceTags               []string
	ServiceCheckInterval      time.Duration // default 5s
	ServiceCheckTLSServerName string
}

// Address is the agent's host:port and its scheme, from url, or host, port and scheme.
func (c *Consul) Address() (addr, scheme string, err error) {
	scheme = c.Scheme
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || u.Host == "" {
			return "", "", fmt.Errorf("consul.url %q is not a URL http(s)://host:port", c.URL)
		}
		return u.Host, strings.ToLower(u.Scheme), nil
	}
	host := c.Host
	if host == "" {
		host = "127.0.0.1"
	}
	if _, _, err := SplitHostPort(host); err != nil {
		port := c.Port
		if port == 0 {
			port = 8500
		}
		host = host + ":" + strconv.Itoa(port)
	}
	if scheme == "" {
		scheme = "http"
	}
	return host, scheme, nil
}

// ZooKeeper is the "zookeeper" section (Patroni's keys).
type ZooKeeper struct {
	Hosts       []string // host:port each
	UseSSL      bool
	CACert      string
	Cert        string
	Key         string
	KeyPassword string
	Verify      *bool // verify the server's certificate (default true)
	// SetACLs: principal -> permissions (READ, WRITE, CREATE, DELETE, ADMIN, ALL) applied to every
	// znode tusker creates.
	SetACLs map[string][]string
	// AuthData: scheme -> credential added to the session ("digest": "user:password").
	AuthData map[string]string
}

// Kubernetes is the "kubernetes" section (Patroni's keys, plus use_leases). Patroni's
// bypass_api_service has no field: tusker always talks to the configured address, so the key is
// reported as not implemented rather than read and ignored.
type Kubernetes struct {
	Namespace               string            // default "default"
	Labels                  map[string]string // on every object tusker creates, and the member selector
	ScopeLabel              string            // default cluster-name
	RoleLabel               string            // default role
	LeaderLabelValue        string            // default primary
	FollowerLabelValue      string            // default replica
	StandbyLeaderLabelValue string            // default primary
	TmpRoleLabel            string
	BootstrapLabels         map[string]string
	UseEndpoints            bool
	// UseLeases keeps the leader lock in a coordination.k8s.io Lease (tusker's; Patroni has none).
	UseLeases          bool
	PodIP              string
	Ports              []KubePort
	CACert             string
	RetriableHTTPCodes []int
	Context            string // kubeconfig context when running outside a cluster
}

// KubePort is one entry of kubernetes.ports: the ports of the leader Endpoints.
type KubePort struct {
	Name     string
	Port     int
	Protocol string
}

func (d *decoder) consul(path string, n *node) *Consul {
	c := &Consul{}
	d.fields(path, n, intHandlers(d, map[string]func(string, *node){
		"host": d.setStr(&c.Host, wantHostPort),
		"url":  d.setStr(&c.URL, `a string "http(s)://host:port"`),
		"scheme": func(p string, v *node) {
			if s, ok := d.str(p, v, "http or https"); ok {
				c.Scheme = strings.ToLower(strings.TrimSpace(s))
			}
		},
		"token":  d.setStr(&c.Token, "a string"),
		"verify": d.optBool(&c.Verify),
		"cacert": d.setStr(&c.CACert, "a string (a file path)"),
		"cert":   d.setStr(&c.Cert, "a string (a file path)"),
		"key":    d.setStr(&c.Key, "a string (a file path)"),
		"dc":     d.setStr(&c.DC, "a string"),
		"consistency": func(p string, v *node) {
			if s, ok := d.str(p, v, "default, consistent or stale"); ok {
				c.Consistency = strings.ToLower(strings.TrimSpace(s))
			}
		},
		"checks":           func(p string, v *node) { c.Checks = d.commaList(p, v, "a list of check IDs") },
		"register_service": d.setBool(&c.RegisterService),
		"service_tags":     func(p string, v *node) { c.ServiceTags = d.commaList(p, v, "a list of tags") },
		"service_check_interval": func(p string, v *node) {
			if dur, ok := d.duration(p, v); ok {
				c.ServiceCheckInterval = dur
			}
		},
		"service_check_tls_server_name": d.setStr(&c.ServiceCheckTLSServerName, "a string"),
	}, consulInts, c))
	return c
}

func (d *decoder) zookeeper(path string, n *node) *ZooKeeper {
	z := &ZooKeeper{}
	d.fields(path, n, map[string]func(string, *node){
		"hosts":        func(p string, v *node) { z.Hosts = d.hostList(p, v) },
		"use_ssl":      d.setBool(&z.UseSSL),
		"cacert":       d.setStr(&z.CACert, "a string (a file path)"),
		"cert":         d.setStr(&z.Cert, "a string (a file path)"),
		"key":          d.setStr(&z.Key, "a string (a file path)"),
		"key_password": d.setStr(&z.KeyPassword, "a string"),
		"verify":       d.optBool(&z.Verify),
		"set_acls": func(p string, v *node) {
			if !d.freeMap(p, v, "a map of principals to lists of permissions") {
				return
			}
			z.SetACLs = map[string][]string{}
			for _, k := range v.keys {
				z.SetACLs[k] = d.commaList(joinPath(p, k), v.m[k], "a list of permissions (READ, WRITE, CREATE, DELETE, ADMIN, ALL)")
			}
		},
		"auth_data": func(p string, v *node) {
			// Patroni takes a map scheme -> credential; a list of "scheme:credential" is accepted too.
			if v.kind == listNode || v.kind == scalarNode {
				z.AuthData = map[string]string{}
				for i, s := range d.commaList(p, v, `a map of scheme to credential`) {
					scheme, cred, ok := strings.Cut(s, ":")
					if !ok {
						d.problem(indexPath(p, i), v, `expected "scheme:credential", got %q`, s)
						continue
					}
					z.AuthData[scheme] = cred
				}
				return
			}
			z.AuthData = d.stringMap(p, v)
		},
	})
	return z
}

func (d *decoder) kubernetes(path string, n *node) *Kubernetes {
	k := &Kubernetes{}
	d.fields(path, n, map[string]func(string, *node){
		"namespace":                  d.setStr(&k.Namespace, "a string"),
		"labels":                     func(p string, v *node) { k.Labels = d.stringMap(p, v) },
		"scope_label":                d.setStr(&k.ScopeLabel, "a string"),
		"role_label":                 d.setStr(&k.RoleLabel, "a string"),
		"leader_label_value":         d.setStr(&k.LeaderLabelValue, "a string"),
		"follower_label_value":       d.setStr(&k.FollowerLabelValue, "a string"),
		"standby_leader_label_value": d.setStr(&k.StandbyLeaderLabelValue, "a string"),
		"tmp_role_label":             d.setStr(&k.TmpRoleLabel, "a string"),
		"bootstrap_labels":           func(p string, v *node) { k.BootstrapLabels = d.stringMap(p, v) },
		"use_endpoints":              d.setBool(&k.UseEndpoints),
		"use_leases":                 d.setBool(&k.UseLeases),
		"pod_ip":                     d.setStr(&k.PodIP, "a string (an IP address)"),
		"ports":                      func(p string, v *node) { k.Ports = d.kubePorts(p, v) },
		"cacert":                     d.setStr(&k.CACert, "a string (a file path)"),
		"retriable_http_codes": func(p string, v *node) {
			if v.kind == scalarNode {
				if i, ok := d.integer(p, v, "an HTTP status code or a list of them"); ok {
					k.RetriableHTTPCodes = []int{int(i)}
				}
				return
			}
			if v.kind != listNode {
				if v.kind != nullNode {
					d.problem(p, v, "expected a list of HTTP status codes, got %s", describe(v))
				}
				return
			}
			for i, it := range v.list {
				if c, ok := d.integer(indexPath(p, i), it, "an HTTP status code"); ok {
					k.RetriableHTTPCodes = append(k.RetriableHTTPCodes, int(c))
				}
			}
		},
		"context": d.setStr(&k.Context, "a string (a kubeconfig context)"),
	})
	return k
}

func (d *decoder) kubePorts(path string, n *node) []KubePort {
	d.track(path, n)
	if n.kind == nullNode {
		return nil
	}
	if n.kind != listNode {
		d.problem(path, n, `expected a list of {name, port}, got %s`, describe(n))
		return nil
	}
	var out []KubePort
	for i, it := range n.list {
		p := indexPath(path, i)
		var kp KubePort
		if it.kind != mapNode {
			d.problem(p, it, `expected a map {name: postgresql, port: 5432}, got %s`, describe(it))
			continue
		}
		d.fields(p, it, intHandlers(d, map[string]func(string, *node){
			"name":     d.setStr(&kp.Name, "a string"),
			"protocol": d.setStr(&kp.Protocol, "TCP, UDP or SCTP"),
		}, kubePortInts, &kp))
		out = append(out, kp)
	}
	return out
}

// optBool reads an optional boolean (nil when absent).
func (d *decoder) optBool(dst **bool) func(string, *node) {
	return func(p string, v *node) {
		if b, ok := d.boolean(p, v); ok {
			*dst = &b
		}
	}
}

// duration reads "5s", "1m30s", or a number of seconds, from 0 to maxSettingDuration. A number
// of seconds is bounded before it is multiplied into a Duration, so that it cannot wrap around.
func (d *decoder) duration(path string, n *node) (time.Duration, bool) {
	d.track(path, n)
	if n.kind == nullNode {
		return 0, false
	}
	if n.kind == scalarNode {
		var dur time.Duration
		parsed := false
		if i, ok := scalarInt(n.val); ok {
			parsed = true
			if i >= 0 && i <= int64(maxSettingDuration/time.Second) {
				dur = time.Duration(i) * time.Second
			} else {
				dur = -1
			}
		} else if pd, err := time.ParseDuration(strings.TrimSpace(n.text)); err == nil {
			parsed, dur = true, pd
		}
		switch {
		case parsed && (dur < 0 || dur > maxSettingDuration):
			d.problem(path, n, "must be between 0 and %s, got %s", maxSettingDuration, strings.TrimSpace(n.text))
			return 0, false
		case parsed:
			return dur, true
		}
	}
	d.problem(path, n, `expected a duration ("5s") or a number of seconds, got %s`, describe(n))
	return 0, false
}

// validateOtherDCS checks the consul, zookeeper and kubernetes sections; exactly one DCS section
// must be configured.
func (c *Config) validateOtherDCS(add func(string, string, ...any)) {
	if z := c.ZooKeeper; z != nil {
		if len(z.Hosts) == 0 {
			add("zookeeper.hosts", `required: at least one ZooKeeper server "host:port"`)
		}
		for i, h := range z.Hosts {
			if _, _, err := SplitHostPort(h); err != nil {
				add(indexPath("zookeeper.hosts", i), "%v", err)
			}
		}
		if (z.Cert == "") != (z.Key == "") {
			add("zookeeper.cert", "zookeeper.cert and zookeeper.key must be set together")
		}
		perms := []string{"READ", "WRITE", "CREATE", "DELETE", "ADMIN", "ALL"}
		for principal, ps := range z.SetACLs {
			for _, p := range ps {
				if !slices.Contains(perms, strings.ToUpper(p)) {
					add("zookeeper.set_acls."+principal, "unknown permission %q (expected READ, WRITE, CREATE, DELETE, ADMIN or ALL)", p)
				}
			}
		}
	}
	addKey := func(key, msg string) { add(key, "%s", msg) }
	if k := c.Consul; k != nil {
		checkInts(consulInts, k, "consul.", addKey)
		if _, scheme, err := k.Address(); err != nil {
			add("consul.url", "%v", err)
		} else if scheme != "http" && scheme != "https" {
			add("consul.scheme", "expected http or https, got %q", scheme)
		}
		switch k.Consistency {
		case "", "default", "consistent", "stale":
		default:
			add("consul.consistency", "expected default, consistent or stale, got %q", k.Consistency)
		}
		if (k.Cert == "") != (k.Key == "") {
			add("consul.cert", "consul.cert and consul.key must be set together")
		}
		if k.ServiceCheckInterval < 0 {
			add("consul.service_check_interval", "must not be negative")
		}
	}
	if k := c.Kubernetes; k != nil {
		if k.UseEndpoints && k.UseLeases {
			add("kubernetes.use_leases", "cannot be combined with kubernetes.use_endpoints: choose where the leader lock lives")
		}
		if k.UseEndpoints && k.PodIP == "" {
			add("kubernetes.pod_ip", "required with use_endpoints: the leader Endpoints point at this IP (set PATRONI_KUBERNETES_POD_IP from status.podIP)")
		}
		for i := range k.Ports {
			checkInts(kubePortInts, &k.Ports[i], indexPath("kubernetes.ports", i)+".", addKey)
		}
		for i, code := range k.RetriableHTTPCodes {
			if code < 100 || code > 599 {
				add(indexPath("kubernetes.retriable_http_codes", i), "expected an HTTP status code, got %d", code)
			}
		}
	}
}

// DCSName names the configured DCS section ("etcd3", "consul", "zookeeper", "kubernetes"), or "".
func (c *Config) DCSName() string {
	switch {
	case c.Etcd3 != nil:
		return "etcd3"
	case c.Consul != nil:
		return "consul"
	case c.ZooKeeper != nil:
		return "zookeeper"
	case c.Kubernetes != nil:
		return "kubernetes"
	}
	return ""
}
