package config

import (
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// decoder walks a node tree into the typed structs, collecting type problems (each naming its
// key path) and the key paths tusker does not implement.
type decoder struct {
	problems []string
	unimpl   []string
	sources  map[string]string // key path -> "at file:line" / "from PATRONI_X"
	// cat is set only when the decoder builds the key catalog (catalog.go): absent sections are
	// then walked through every handler instead of being skipped.
	cat *catalog
}

func newDecoder() *decoder {
	return &decoder{sources: map[string]string{}}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

func (d *decoder) problem(path string, n *node, format string, args ...any) {
	msg := path + ": " + fmt.Sprintf(format, args...)
	if n != nil && n.src != "" {
		msg += " (" + n.src + ")"
	}
	d.problems = append(d.problems, msg)
}

func (d *decoder) track(path string, n *node) {
	if n != nil && n.src != "" {
		d.sources[path] = n.src
	}
}

func (d *decoder) unimplemented(path string) {
	d.unimpl = append(d.unimpl, path)
}

// unimplementedList returns the sorted, unique unimplemented key paths.
func (d *decoder) unimplementedList() []string {
	if len(d.unimpl) == 0 {
		return nil
	}
	l := slices.Clone(d.unimpl)
	sort.Strings(l)
	return slices.Compact(l)
}

// fields walks a map node: known keys go to their handler, the others are unimplemented.
// A null section is an empty section; anything else than a map is a problem. The handler maps
// are the one list of the keys tusker implements: the key catalog (catalog.go) is read off them.
func (d *decoder) fields(path string, n *node, handlers map[string]func(p string, v *node)) bool {
	return d.section(path, n, "a map of settings", handlers, func(p, _ string, _ *node) { d.unimplemented(p) })
}

// section is fields with a say over the keys that have no handler (tags keeps them) and over
// the wording of the problem when n is no map.
func (d *decoder) section(path string, n *node, want string, handlers map[string]func(p string, v *node),
	other func(p, k string, v *node)) bool {
	d.track(path, n)
	switch n.kind {
	case nullNode:
		if d.cat != nil {
			d.cat.enumerate(d, path, handlers)
		}
		return true
	case mapNode:
	default:
		d.problem(path, n, "expected %s, got %s", want, describe(n))
		return false
	}
	for _, k := range n.keys {
		p := joinPath(path, k)
		if h, ok := handlers[k]; ok {
			h(p, n.m[k])
		} else {
			other(p, k, n.m[k])
		}
	}
	return true
}

// str reads a string; any scalar is accepted as its literal text. ok is false for null/absent.
func (d *decoder) str(path string, n *node, want string) (string, bool) {
	d.track(path, n)
	switch n.kind {
	case nullNode:
		return "", false
	case scalarNode:
		return n.text, true
	}
	d.problem(path, n, "expected %s, got %s", want, describe(n))
	return "", false
}

func (d *decoder) setStr(dst *string, want string) func(string, *node) {
	return func(p string, v *node) {
		if s, ok := d.str(p, v, want); ok {
			*dst = s
		}
	}
}

// integer reads an integer: a YAML/JSON integer, an integral float or a string holding one.
func (d *decoder) integer(path string, n *node, want string) (int64, bool) {
	d.track(path, n)
	if d.cat != nil {
		d.cat.integers = append(d.cat.integers, path)
	}
	if n.kind == nullNode {
		return 0, false
	}
	if n.kind == scalarNode {
		if i, ok := scalarInt(n.val); ok {
			return i, true
		}
	}
	d.problem(path, n, "expected %s, got %s", want, describe(n))
	return 0, false
}

func scalarInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<62 {
			return int64(x), true
		}
	case string:
		s := strings.TrimSpace(x)
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<62 {
			return int64(f), true
		}
	}
	return 0, false
}

// boolean reads a boolean the way Patroni's parse_bool does: true/false, yes/no, on/off, 1/0.
func (d *decoder) boolean(path string, n *node) (bool, bool) {
	d.track(path, n)
	if n.kind == nullNode {
		return false, false
	}
	if n.kind == scalarNode {
		if b, ok := scalarBool(n.val); ok {
			return b, true
		}
	}
	d.problem(path, n, "expected a boolean (true/false, yes/no, on/off), got %s", describe(n))
	return false, false
}

func scalarBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case int:
		if x == 0 || x == 1 {
			return x == 1, true
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes", "on", "1", "y", "t":
			return true, true
		case "false", "no", "off", "0", "n", "f":
			return false, true
		}
	}
	return false, false
}

func (d *decoder) setBool(dst *bool) func(string, *node) {
	return func(p string, v *node) {
		if b, ok := d.boolean(p, v); ok {
			*dst = b
		}
	}
}

// stringList reads a list of strings (e.g. pg_hba lines).
func (d *decoder) stringList(path string, n *node, want string) []string {
	d.track(path, n)
	switch n.kind {
	case nullNode:
		return nil
	case listNode:
		out := make([]string, 0, len(n.list))
		for i, it := range n.list {
			p := indexPath(path, i)
			switch it.kind {
			case scalarNode:
				out = append(out, it.text)
			case nullNode:
			default:
				d.problem(p, it, "expected a string, got %s", describe(it))
			}
		}
		return out
	}
	d.problem(path, n, "expected %s, got %s", want, describe(n))
	return nil
}

// hostList reads a list of "host:port" or a comma-separated string of them.
func (d *decoder) hostList(path string, n *node) []string {
	d.track(path, n)
	switch n.kind {
	case nullNode:
		return nil
	case scalarNode:
		return splitComma(n.text)
	case listNode:
		var out []string
		for i, it := range n.list {
			if it.kind != scalarNode {
				if it.kind != nullNode {
					d.problem(indexPath(path, i), it, `expected a string "host:port", got %s`, describe(it))
				}
				continue
			}
			out = append(out, splitComma(it.text)...)
		}
		return out
	}
	d.problem(path, n, `expected a list of "host:port" or a comma-separated string, got %s`, describe(n))
	return nil
}

func splitComma(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// freeMap reports whether n is a map with names chosen by the user; null is no map, and
// anything else is a problem.
func (d *decoder) freeMap(path string, n *node, want string) bool {
	d.track(path, n)
	switch n.kind {
	case mapNode:
		return true
	case nullNode:
	default:
		d.problem(path, n, "expected %s, got %s", want, describe(n))
	}
	return false
}

// parameters reads a free-form map of PostgreSQL parameters; values are kept as given.
func (d *decoder) parameters(path string, n *node) map[string]any {
	if !d.freeMap(path, n, "a map of parameter names to values") {
		return nil
	}
	out := make(map[string]any, len(n.keys))
	for _, k := range n.keys {
		v := n.m[k]
		p := joinPath(path, k)
		d.track(p, v)
		switch v.kind {
		case scalarNode:
			out[k] = v.val
		case nullNode:
			// null removes a parameter (Patroni's merge semantics)
		default:
			d.problem(p, v, "expected a string, number or boolean, got %s", describe(v))
		}
	}
	return out
}

func (d *decoder) auth(path string, n *node) Auth {
	var a Auth
	d.fields(path, n, map[string]func(string, *node){
		"username": d.setStr(&a.Username, "a string"),
		"password": d.setStr(&a.Password, "a string"),
	})
	return a
}

const wantHostPort = `a string "host:port"`

// decodeConfig walks the whole local configuration.
func decodeConfig(d *decoder, root *node) *Config {
	c := &Config{}
	dynamicSeen := false
	handlers := map[string]func(string, *node){
		"scope":      d.setStr(&c.Scope, "a string"),
		"namespace":  d.setStr(&c.Namespace, "a string"),
		"name":       d.setStr(&c.Name, "a string"),
		"log":        func(p string, v *node) { d.log(p, v, &c.Log) },
		"restapi":    func(p string, v *node) { d.restapi(p, v, &c.RestAPI) },
		"ctl":        func(p string, v *node) { d.ctl(p, v, &c.Ctl) },
		"postgresql": func(p string, v *node) { d.postgresql(p, v, &c.PostgreSQL) },
		"tags":       func(p string, v *node) { c.Tags = d.tags(p, v) },
		"watchdog":   func(p string, v *node) { d.watchdog(p, v, &c.Watchdog) },
		"bootstrap": func(p string, v *node) {
			c.Bootstrap, dynamicSeen = d.bootstrap(p, v)
		},
	}
	// etcd3 and etcd (accepted as etcd v3 too) are folded into one section; etcd3 wins.
	var e3, e *Etcd
	handlers["etcd3"] = func(p string, v *node) { e3 = d.etcd(p, v) }
	handlers["etcd"] = func(p string, v *node) { e = d.etcd(p, v) }
	handlers["consul"] = func(p string, v *node) { c.Consul = d.consul(p, v) }
	handlers["zookeeper"] = func(p string, v *node) { c.ZooKeeper = d.zookeeper(p, v) }
	handlers["kubernetes"] = func(p string, v *node) { c.Kubernetes = d.kubernetes(p, v) }

	// A null document is an empty one; fields treats it so (and the catalog walks it).
	if root.kind != mapNode && root.kind != nullNode {
		d.problem("(top level)", root, "expected a map of settings, got %s", describe(root))
		return c
	}
	d.fields("", root, handlers)
	c.Etcd3 = foldEtcd(e3, e)
	if e3 == nil && e != nil {
		c.etcdKey = "etcd"
	}
	if !dynamicSeen {
		c.Bootstrap.DCS = DefaultDynamic()
	}
	return c
}

func (d *decoder) log(path string, n *node, l *Log) {
	d.fields(path, n, map[string]func(string, *node){
		"level": func(p string, v *node) {
			if s, ok := d.str(p, v, "a string"); ok {
				l.Level = strings.ToUpper(strings.TrimSpace(s))
			}
		},
		"type": func(p string, v *node) {
			if s, ok := d.str(p, v, "a string"); ok {
				l.Type = strings.ToLower(strings.TrimSpace(s))
			}
		},
	})
}

func (d *decoder) restapi(path string, n *node, r *RestAPI) {
	const file = "a string (a file path)"
	d.fields(path, n, map[string]func(string, *node){
		"listen":           d.setStr(&r.Listen, wantHostPort),
		"connect_address":  d.setStr(&r.ConnectAddress, wantHostPort),
		"authentication":   d.optAuth(&r.Authentication),
		"certfile":         d.setStr(&r.CertFile, file),
		"keyfile":          d.setStr(&r.KeyFile, file),
		"keyfile_password": d.setStr(&r.KeyFilePassword, "a string"),
		"cafile":           d.setStr(&r.CAFile, file),
		"ciphers":          d.setStr(&r.Ciphers, "a string (an OpenSSL cipher list)"),
		"verify_client": func(p string, v *node) {
			if s, ok := d.str(p, v, "none, optional or required"); ok {
				r.VerifyClient = strings.ToLower(strings.TrimSpace(s))
			}
		},
		"allowlist": func(p string, v *node) {
			r.Allowlist = d.commaList(p, v, "a list of hosts, IPs or CIDRs")
		},
		"allowlist_include_members": d.setBool(&r.AllowlistIncludeMembers),
		"verify_client_names": func(p string, v *node) {
			r.VerifyClientNames = d.commaList(p, v, "a list of certificate names")
		},
		"protect_reads":       d.setBool(&r.ProtectReads),
		"http_extra_headers":  func(p string, v *node) { r.HTTPExtraHeaders = d.stringMap(p, v) },
		"https_extra_headers": func(p string, v *node) { r.HTTPSExtraHeaders = d.stringMap(p, v) },
		"server_tokens":       d.setStr(&r.ServerTokens, "Original, Minimal or ProductOnly"),
	})
}

func (d *decoder) ctl(path string, n *node, c *Ctl) {
	const file = "a string (a file path)"
	d.fields(path, n, map[string]func(string, *node){
		"insecure":         d.setBool(&c.Insecure),
		"cacert":           d.setStr(&c.CACert, file),
		"certfile":         d.setStr(&c.CertFile, file),
		"keyfile":          d.setStr(&c.KeyFile, file),
		"keyfile_password": d.setStr(&c.KeyFilePassword, "a string"),
		"authentication":   d.optAuth(&c.Authentication),
	})
}

func (d *decoder) optAuth(dst **Auth) func(string, *node) {
	return func(p string, v *node) {
		if v.kind == nullNode {
			if d.cat != nil {
				d.auth(p, v) // an absent section still has keys for the catalog
			}
			return
		}
		a := d.auth(p, v)
		*dst = &a
	}
}

// commaList reads a list of strings or one comma-separated string.
func (d *decoder) commaList(path string, n *node, want string) []string {
	if n.kind == scalarNode {
		d.track(path, n)
		return splitComma(n.text)
	}
	return d.stringList(path, n, want)
}

// stringMap reads a map of scalar values as strings (HTTP header names to values).
func (d *decoder) stringMap(path string, n *node) map[string]string {
	if !d.freeMap(path, n, "a map of names to values") {
		return nil
	}
	out := make(map[string]string, len(n.keys))
	for _, k := range n.keys {
		if s, ok := d.str(joinPath(path, k), n.m[k], "a string"); ok {
			out[k] = s
		}
	}
	return out
}

func (d *decoder) etcd(path string, n *node) *Etcd {
	e := &Etcd{}
	var host, urls []string
	var urlNode *node
	d.fields(path, n, map[string]func(string, *node){
		"host": func(p string, v *node) {
			if s, ok := d.str(p, v, wantHostPort); ok {
				host = splitComma(s)
			}
		},
		"hosts": func(p string, v *node) { e.Hosts = d.hostList(p, v) },
		"url": func(p string, v *node) {
			if s, ok := d.str(p, v, `a string "http(s)://host:port"`); ok {
				urls, urlNode = splitComma(s), v
			}
		},
		"protocol": func(p string, v *node) {
			if s, ok := d.str(p, v, `a string "http" or "https"`); ok {
				e.Protocol = strings.ToLower(strings.TrimSpace(s))
			}
		},
		"username": d.setStr(&e.Username, "a string"),
		"password": d.setStr(&e.Password, "a string"),
		"cacert":   d.setStr(&e.CACert, "a string (a file path)"),
		"cert":     d.setStr(&e.Cert, "a string (a file path)"),
		"key":      d.setStr(&e.Key, "a string (a file path)"),
	})
	all := append(e.Hosts, host...)
	e.Hosts = nil
	for _, h := range all {
		e.Hosts = appendHost(d, path+".hosts", nil, e, h)
	}
	for _, u := range urls {
		e.Hosts = appendHost(d, path+".url", urlNode, e, u)
	}
	return e
}

// appendHost adds one etcd endpoint to e.Hosts (deduplicated). An endpoint given as a URL
// sets the protocol when none is set explicitly.
func appendHost(d *decoder, path string, n *node, e *Etcd, h string) []string {
	if strings.Contains(h, "://") {
		u, err := url.Parse(h)
		if err != nil || u.Host == "" {
			d.problem(path, n, "%q is not a valid URL", h)
			return e.Hosts
		}
		scheme := strings.ToLower(u.Scheme)
		switch {
		case e.Protocol == "":
			e.Protocol = scheme
		case e.Protocol != scheme:
			d.problem(path, n, "scheme of %q conflicts with protocol %q", h, e.Protocol)
		}
		h = u.Host
	}
	if slices.Contains(e.Hosts, h) {
		return e.Hosts
	}
	return append(e.Hosts, h)
}

func foldEtcd(e3, e *Etcd) *Etcd {
	switch {
	case e3 == nil:
		return e
	case e == nil:
		return e3
	}
	out := *e3
	out.Hosts = slices.Clone(e3.Hosts)
	for _, h := range e.Hosts {
		if !slices.Contains(out.Hosts, h) {
			out.Hosts = append(out.Hosts, h)
		}
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&out.Protocol, e.Protocol}, {&out.Username, e.Username}, {&out.Password, e.Password},
		{&out.CACert, e.CACert}, {&out.Cert, e.Cert}, {&out.Key, e.Key},
	} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
	return &out
}

func (d *decoder) bootstrap(path string, n *node) (Bootstrap, bool) {
	b := Bootstrap{DCS: DefaultDynamic()}
	seen := false
	postInit := ""
	sections := map[string]*node{} // keys without a handler: the method's section is one
	d.section(path, n, "a map of settings", map[string]func(string, *node){
		"dcs": func(p string, v *node) {
			b.DCS, seen = decodeDynamic(d, p, v), true
		},
		"initdb":         func(p string, v *node) { b.Initdb = d.initdb(p, v) },
		"pg_hba":         func(p string, v *node) { b.PgHBA = d.stringList(p, v, "a list of pg_hba.conf lines") },
		"post_bootstrap": d.setStr(&b.PostBootstrap, "a string (a command)"),
		"post_init":      d.setStr(&postInit, "a string (a command)"),
		"users":          func(p string, v *node) { b.Users = d.users(p, v) },
		"method": func(p string, v *node) {
			if s, ok := d.str(p, v, "a string (initdb or the name of a section of bootstrap)"); ok {
				b.Method = strings.TrimSpace(s)
			}
		},
	}, func(_, k string, v *node) { sections[k] = v })
	if b.PostBootstrap == "" {
		b.PostBootstrap = postInit
	}
	if m := b.Method; m != "" && m != "initdb" && sections[m] != nil {
		b.Custom = d.bootstrapMethod(joinPath(path, m), m, sections[m])
		delete(sections, m)
	}
	for _, k := range slices.Sorted(maps.Keys(sections)) {
		d.unimplemented(joinPath(path, k))
	}
	return b, seen
}

// disallowedInitdb are the initdb options tusker (like Patroni) sets itself.
var disallowedInitdb = []string{"pgdata", "nosync", "pwfile", "sync-only", "version"}

func (d *decoder) initdb(path string, n *node) []string {
	return d.toolOptions(path, n, "initdb", disallowedInitdb)
}

// toolOptions reads the options of a PostgreSQL tool (initdb, pg_basebackup) in Patroni's two
// forms: a list of "name" or "name: value" items, or a map of name: value. They come back as
// "--name" and "--name=value" (a boolean true is "--name", false leaves the option out).
func (d *decoder) toolOptions(path string, n *node, tool string, disallowed []string) []string {
	d.track(path, n)
	var args []string
	add := func(p string, name string, v *node, at *node) {
		name = strings.TrimLeft(strings.TrimSpace(name), "-")
		if name == "" {
			d.problem(p, at, "empty %s option", tool)
			return
		}
		if slices.Contains(disallowed, name) {
			d.problem(p, at, "%s option %q is not allowed (tusker sets it itself; not allowed: %s)",
				tool, name, strings.Join(disallowed, ", "))
			return
		}
		switch {
		case v == nil || v.kind == nullNode:
			args = append(args, "--"+name)
		case v.kind == scalarNode:
			if b, ok := v.val.(bool); ok {
				if b {
					args = append(args, "--"+name)
				}
				return
			}
			args = append(args, "--"+name+"="+v.text)
		default:
			d.problem(p, v, "expected an option value (a string), got %s", describe(v))
		}
	}
	switch n.kind {
	case nullNode:
		return nil
	case listNode:
		for i, it := range n.list {
			p := indexPath(path, i)
			switch {
			case it.kind == scalarNode:
				add(p, it.text, nil, it)
			case it.kind == mapNode && len(it.keys) == 1:
				add(p, it.keys[0], it.m[it.keys[0]], it)
			case it.kind == mapNode:
				d.problem(p, it, "expected one option (\"- name\" or \"- name: value\"), got a map with %d keys", len(it.keys))
			default:
				d.problem(p, it, "expected an option (\"- name\" or \"- name: value\"), got %s", describe(it))
			}
		}
	case mapNode:
		for _, k := range n.keys {
			add(joinPath(path, k), k, n.m[k], n.m[k])
		}
	default:
		d.problem(path, n, "expected a list of %s options, got %s", tool, describe(n))
	}
	return args
}

func (d *decoder) postgresql(path string, n *node, pg *PostgreSQL) {
	var methods []string
	var methodsNode *node
	sections := map[string]*node{} // keys without a handler: the replica methods' sections
	d.section(path, n, "a map of settings", intHandlers(d, map[string]func(string, *node){
		"listen":          d.setStr(&pg.Listen, `a string "host[,host...]:port"`),
		"connect_address": d.setStr(&pg.ConnectAddress, wantHostPort),
		"data_dir":        d.setStr(&pg.DataDir, "a string (a directory)"),
		"bin_dir":         d.setStr(&pg.BinDir, "a string (a directory)"),
		"config_dir":      d.setStr(&pg.ConfigDir, "a string (a directory)"),
		"pgpass":          d.setStr(&pg.Pgpass, "a string (a file path)"),
		"authentication": func(p string, v *node) {
			d.fields(p, v, map[string]func(string, *node){
				"superuser":   func(p string, v *node) { pg.Authentication.Superuser = d.auth(p, v) },
				"replication": func(p string, v *node) { pg.Authentication.Replication = d.auth(p, v) },
				"rewind":      func(p string, v *node) { pg.Authentication.Rewind = d.auth(p, v) },
			})
		},
		"parameters":    func(p string, v *node) { pg.Parameters = d.parameters(p, v) },
		"pg_hba":        func(p string, v *node) { pg.PgHBA = d.stringList(p, v, "a list of pg_hba.conf lines") },
		"pg_ident":      func(p string, v *node) { pg.PgIdent = d.stringList(p, v, "a list of pg_ident.conf lines") },
		"recovery_conf": func(p string, v *node) { pg.RecoveryConf = d.recoveryConf(p, v) },
		"basebackup": func(p string, v *node) {
			pg.Basebackup = d.toolOptions(p, v, "pg_basebackup", disallowedBasebackup)
		},
		"create_replica_methods": func(p string, v *node) {
			methods, methodsNode = d.commaList(p, v, "a list of method names"), v
		},
		"use_pg_rewind": func(p string, v *node) {
			if b, ok := d.boolean(p, v); ok {
				pg.UsePgRewind = &b
			}
		},
		"remove_data_directory_on_rewind_failure":     d.setBool(&pg.RemoveDataDirectoryOnRewindFailure),
		"remove_data_directory_on_diverged_timelines": d.setBool(&pg.RemoveDataDirectoryOnDivergedTimelines),
		"pre_promote": d.setStr(&pg.PrePromote, "a string (a command)"),
		"before_stop": d.setStr(&pg.BeforeStop, "a string (a command)"),
		"callbacks": func(p string, v *node) {
			const cmd = "a string (a command)"
			cb := &pg.Callbacks
			d.fields(p, v, map[string]func(string, *node){
				"on_start":       d.setStr(&cb.OnStart, cmd),
				"on_stop":        d.setStr(&cb.OnStop, cmd),
				"on_restart":     d.setStr(&cb.OnRestart, cmd),
				"on_reload":      d.setStr(&cb.OnReload, cmd),
				"on_role_change": d.setStr(&cb.OnRoleChange, cmd),
			})
		},
	}, postgresqlInts, pg), func(_, k string, v *node) { sections[k] = v })
	pg.CreateReplicaMethods = d.replicaMethods(joinPath(path, "create_replica_methods"), methodsNode, methods, path, sections)
	for _, k := range slices.Sorted(maps.Keys(sections)) {
		d.unimplemented(joinPath(path, k))
	}
}

// replicaMethods resolves the names of create_replica_methods to their sections of postgresql
// (taken out of sections); a name without a section is a command of that name, as in Patroni.
func (d *decoder) replicaMethods(path string, at *node, names []string, section string, sections map[string]*node) []ReplicaMethod {
	var out []ReplicaMethod
	for i, name := range names {
		name = strings.TrimSpace(name)
		if msg := methodName(name); msg != "" {
			d.problem(indexPath(path, i), at, "%s", msg)
			continue
		}
		if name == BasebackupMethod {
			out = append(out, ReplicaMethod{Name: name})
			continue
		}
		v := sections[name]
		if v == nil {
			v = &node{kind: nullNode}
		}
		delete(sections, name)
		out = append(out, d.replicaMethod(joinPath(section, name), name, v))
	}
	return out
}

// watchdog reads the "watchdog" section. mode accepts Patroni's spellings, YAML booleans
// included (false is off, true is automatic).
func (d *decoder) watchdog(path string, n *node, w *Watchdog) {
	d.fields(path, n, intHandlers(d, map[string]func(string, *node){
		"mode": func(p string, v *node) {
			s, ok := d.str(p, v, "off, automatic or required")
			if !ok {
				return
			}
			switch strings.ToLower(strings.TrimSpace(s)) {
			case "off", "false", "no", "disabled", "disable":
				w.Mode = "off"
			case "automatic", "auto", "true", "yes", "on":
				w.Mode = "automatic"
			case "required", "require":
				w.Mode = "required"
			default:
				d.problem(p, v, "expected off, automatic or required, got %q", s)
			}
		},
		"device": d.setStr(&w.Device, "a string (a device path)"),
	}, watchdogInts, w))
}

// patroniTagsNotImplemented are tags Patroni acts on and tusker does not yet; they are still
// published with the other tags. (nostream: no slot is kept for the member, but it still
// streams.)
var patroniTagsNotImplemented = []string{"nostream"}

func (d *decoder) tags(path string, n *node) Tags {
	var t Tags
	var nofailoverNode, priorityNode *node
	// Any other tag is the user's: published as it is, never reported (but the Patroni tags
	// tusker does not act on).
	other := func(p, k string, v *node) {
		if slices.Contains(patroniTagsNotImplemented, k) {
			d.unimplemented(p)
		}
		if t.Extra == nil {
			t.Extra = map[string]any{}
		}
		t.Extra[k] = v.toAny()
	}
	handlers := intHandlers(d, map[string]func(string, *node){
		"noloadbalance": d.setBool(&t.NoLoadBalance),
		"clonefrom":     d.setBool(&t.CloneFrom),
		"nosync":        d.setBool(&t.NoSync),
	}, tagsInts, &t)
	priority := handlers["failover_priority"]
	handlers["failover_priority"] = func(p string, v *node) {
		priorityNode = v
		priority(p, v)
	}
	handlers["nofailover"] = func(p string, v *node) {
		nofailoverNode = v
		d.setBool(&t.NoFailover)(p, v)
	}
	// replicatefrom names a member; it stays among the published tags (Extra), as Patroni's.
	handlers["replicatefrom"] = func(p string, v *node) {
		if name, ok := d.str(p, v, "a member name"); ok {
			if msg := textProblem(name); msg != "" {
				d.problem(p, v, "%s", msg)
				return
			}
			if t.Extra == nil {
				t.Extra = map[string]any{}
			}
			t.Extra["replicatefrom"] = name
		}
	}
	if !d.section(path, n, "a map of tags", handlers, other) {
		return t
	}
	if nofailoverNode != nil && nofailoverNode.kind != nullNode &&
		priorityNode != nil && priorityNode.kind != nullNode {
		d.problem(joinPath(path, "failover_priority"), priorityNode,
			"cannot be combined with tags.nofailover (set at most one of the two; failover_priority 0 means nofailover)")
	}
	return t
}

// decodeDynamic walks a dynamic configuration (bootstrap.dcs or the DCS /config value) over the
// defaults; Raw receives the whole subtree.
func decodeDynamic(d *decoder, path string, n *node) Dynamic {
	dyn := DefaultDynamic()
	if n.kind == mapNode {
		dyn.Raw = n.toAny().(map[string]any)
	}
	// master_start_timeout is Patroni's old name of primary_start_timeout: it is read into a
	// scratch value and applies only when the new name is absent.
	alias := Dynamic{PrimaryStartTimeout: dyn.PrimaryStartTimeout}
	primaryStartSet := false
	handlers := intHandlers(d, intHandlers(d, map[string]func(string, *node){}, dynamicSeconds, &dyn), dynamicBytes, &dyn)
	primaryStart := handlers["primary_start_timeout"]
	handlers["primary_start_timeout"] = func(p string, v *node) {
		primaryStartSet = primaryStartSet || v.kind != nullNode
		primaryStart(p, v)
	}
	handlers["master_start_timeout"] = masterStartKey.handler(d, &alias)
	// Patroni reads the first non-empty of permanent_replication_slots, permanent_slots, slots.
	slotsUnder := map[string]map[string]PermanentSlot{}
	for _, k := range permanentSlotKeys {
		handlers[k] = func(p string, v *node) { slotsUnder[k] = d.permanentSlots(p, v) }
	}
	handlers["ignore_slots"] = func(p string, v *node) { dyn.IgnoreSlots = d.ignoreSlots(p, v) }
	handlers["member_slots_ttl"] = func(p string, v *node) {
		if ttl, ok := d.pgUnitDuration(p, v, maxMemberSlotsTTL); ok {
			dyn.MemberSlotsTTL = ttl
		}
	}
	maps.Copy(handlers, map[string]func(string, *node){
		"check_timeline":  d.setBool(&dyn.CheckTimeline),
		"standby_cluster": func(p string, v *node) { dyn.StandbyCluster = d.standbyCluster(p, v) },
		"pause":           d.setBool(&dyn.Pause),
		"failsafe_mode":   d.setBool(&dyn.FailsafeMode),
		"synchronous_mode": func(p string, v *node) {
			// Patroni takes a boolean (true = on) or, since 4.0, on/off/quorum.
			if v.kind == scalarNode {
				if s, ok := v.val.(string); ok && strings.EqualFold(strings.TrimSpace(s), "quorum") {
					dyn.SynchronousMode = "quorum"
					return
				}
				if b, ok := scalarBool(v.val); ok {
					dyn.SynchronousMode = map[bool]string{true: "on", false: "off"}[b]
					return
				}
			}
			if v.kind == nullNode {
				return
			}
			d.track(p, v)
			d.problem(p, v, "expected off, on or quorum (or a boolean), got %s", describe(v))
		},
		"synchronous_mode_strict": d.setBool(&dyn.SynchronousModeStrict),
		"postgresql": func(p string, v *node) {
			d.fields(p, v, map[string]func(string, *node){
				"use_pg_rewind": d.setBool(&dyn.PostgreSQL.UsePgRewind),
				"use_slots":     d.setBool(&dyn.PostgreSQL.UseSlots),
				"parameters":    func(p string, v *node) { dyn.PostgreSQL.Parameters = d.parameters(p, v) },
				"pg_hba": func(p string, v *node) {
					dyn.PostgreSQL.PgHBA = d.stringList(p, v, "a list of pg_hba.conf lines")
				},
				"recovery_conf": func(p string, v *node) { dyn.PostgreSQL.RecoveryConf = d.recoveryConf(p, v) },
			})
		},
	})
	d.fields(path, n, handlers)
	for _, k := range slices.Backward(permanentSlotKeys) {
		if len(slotsUnder[k]) > 0 {
			dyn.Slots = slotsUnder[k]
			break
		}
	}
	if !primaryStartSet {
		dyn.PrimaryStartTimeout = alias.PrimaryStartTimeout
	}
	return dyn
}
