package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
)

// Passwords used by every harness cluster.
const (
	SuperuserPassword   = "tusker-super"
	ReplicationPassword = "tusker-repl"
)

// ClusterOptions shape a harness cluster.
type ClusterOptions struct {
	Dir       string // every node gets Dir/<name>
	Scope     string
	Nodes     int
	TuskerBin string
	PGBinDir  string
	EtcdHost  string // host:port of a running etcd
	// DCS, when set, is the YAML of the DCS section instead of etcd3 at EtcdHost, for one node.
	DCS func(node string) string
	// NodeEnv, when set, adds environment variables to one node's tusker process.
	NodeEnv    func(node string) []string
	Cred       *syscall.Credential // run tusker as this user (set when the caller is root)
	ExtraLocal string              // YAML appended to every node's config (top level)
	// APIClient, when set, reaches the nodes' REST APIs over HTTPS (the nodes' ExtraLocal then
	// configures restapi.certfile...): APIURL says https and Patroni, Check and Healthy use it.
	APIClient *http.Client
	// Host, when set, is the address one node listens on and is reached at (default 127.0.0.1):
	// the fault-injection suite gives every node its own network namespace and address.
	Host func(node string) string
	// Wrap, when set, is the command that one node's tusker runs under (its arguments follow), e.g.
	// nsenter into the node's network namespace. The wrapper then drops privileges itself: Cred
	// only decides who owns the node's files.
	Wrap func(node string) []string
	// Network, when set, is a CIDR that pg_hba lets in besides 127.0.0.1 (the nodes' addresses).
	Network string
	// DCSParams are set over the default bootstrap.dcs.postgresql.parameters.
	DCSParams map[string]string
	// DCSPostgreSQL and Bootstrap are YAML (not indented) added to bootstrap.dcs.postgresql and to
	// bootstrap (a recovery_conf, a bootstrap method).
	DCSPostgreSQL, Bootstrap string
	// Dynamic is YAML (not indented) added to bootstrap.dcs (a standby_cluster section).
	Dynamic string
}

// Cluster is a set of real tusker processes managing real PostgreSQL instances.
type Cluster struct {
	Opts  ClusterOptions
	Nodes []*Node
	// SocketDir holds the nodes' Unix sockets: a short path, since a socket path may not exceed
	// 107 bytes and test directories are long.
	SocketDir string
}

// Node is one tusker process and its PostgreSQL.
type Node struct {
	Name       string
	Dir        string
	DataDir    string
	ConfigPath string
	LogPath    string
	APIPort    int
	PGPort     int
	Host       string   // address the node listens on and is reached at
	APIListen  string   // the REST API's listen host when not Host (e.g. 0.0.0.0)
	PGExtra    string   // YAML lines (indented by two spaces) added to the postgresql section
	Env        []string // extra environment for the tusker process
	cred       *syscall.Credential
	wrap       []string
	bin        string
	client     *http.Client // for the REST API; nil = plain HTTP with http.DefaultClient
	cmd        *exec.Cmd
	done       chan struct{}
}

var nodeConfig = template.Must(template.New("node").Funcs(template.FuncMap{"indent": indent, "scalar": yamlScalar}).Parse(`scope: {{.Scope}}
namespace: /service
name: {{.Name}}
restapi:
  listen: {{.APIListen}}:{{.APIPort}}
  connect_address: {{.Host}}:{{.APIPort}}
{{.DCS}}
bootstrap:
  dcs:
{{indent 4 .Dynamic}}
    postgresql:
      use_pg_rewind: true
      use_slots: true
{{indent 6 .DCSPostgreSQL}}
      parameters:
{{- range $k, $v := .DCSParams}}
        {{$k}}: {{scalar $v}}
{{- end}}
{{indent 2 .Bootstrap}}
  initdb:
  - encoding: UTF8
  - data-checksums
  pg_hba:
  - local all postgres peer map=tusker
  - local replication replicator peer map=tusker
  - local all all scram-sha-256
  - host all all 127.0.0.1/32 scram-sha-256
  - host replication all 127.0.0.1/32 scram-sha-256
{{- if .Network}}
  - host all all {{.Network}} scram-sha-256
  - host replication all {{.Network}} scram-sha-256
{{- end}}
postgresql:
  listen: {{.Host}}:{{.PGPort}}
  connect_address: {{.Host}}:{{.PGPort}}
  data_dir: {{.DataDir}}
  bin_dir: {{.PGBinDir}}
  pgpass: {{.Dir}}/pgpass
  authentication:
    superuser:
      username: postgres
      password: ` + SuperuserPassword + `
    replication:
      username: replicator
      password: ` + ReplicationPassword + `
    rewind:
      username: rewinder
      password: tusker-rewind
  parameters:
    unix_socket_directories: '{{.SocketDir}}'
{{.PGExtra}}
{{.Extra}}
`))

// yamlScalar writes a parameter value as YAML: plain when it is a word or a number (so that
// integers stay integers in the dynamic configuration), double-quoted otherwise.
func yamlScalar(v string) string {
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.') {
			return strconv.Quote(v)
		}
	}
	if v == "" {
		return `""`
	}
	return v
}

// indent indents every line of s by n spaces.
func indent(n int, s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pad + l
	}
	return strings.Join(lines, "\n")
}

// NewCluster writes the configuration of every node (n1, n2, ...) without starting anything.
func NewCluster(o ClusterOptions) (*Cluster, error) {
	c := &Cluster{Opts: o}
	sock, err := os.MkdirTemp("/tmp", "tsk")
	if err != nil {
		return nil, err
	}
	c.SocketDir = sock
	if o.Cred != nil {
		_ = os.Chown(sock, int(o.Cred.Uid), int(o.Cred.Gid))
	}
	for i := 1; i <= o.Nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		dir := filepath.Join(o.Dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if o.Cred != nil {
			_ = os.Chown(dir, int(o.Cred.Uid), int(o.Cred.Gid))
		}
		api, err := PickFreePort()
		if err != nil {
			return nil, err
		}
		pgp, err := PickFreePort()
		if err != nil {
			return nil, err
		}
		n := &Node{Name: name, Dir: dir, DataDir: filepath.Join(dir, "data"), APIPort: api, PGPort: pgp,
			Host:       "127.0.0.1",
			ConfigPath: filepath.Join(dir, "tusker.yml"), LogPath: filepath.Join(dir, "tusker.log"),
			cred: o.Cred, bin: o.TuskerBin, client: o.APIClient}
		if o.Host != nil {
			n.Host = o.Host(name)
		}
		if o.Wrap != nil {
			n.wrap = o.Wrap(name)
		}
		if o.NodeEnv != nil {
			n.Env = append(n.Env, o.NodeEnv(name)...)
		}
		if err := c.WriteConfig(n, o.ExtraLocal); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	return c, nil
}

// WriteConfig (re)writes a node's YAML with extra top-level YAML appended.
func (c *Cluster) WriteConfig(n *Node, extra string) error {
	var b strings.Builder
	dcsYAML := "etcd3:\n  hosts: " + c.Opts.EtcdHost
	if c.Opts.DCS != nil {
		dcsYAML = c.Opts.DCS(n.Name)
	}
	apiListen := n.APIListen
	if apiListen == "" {
		apiListen = n.Host
	}
	params := map[string]string{"max_connections": "40", "shared_buffers": "16MB", "wal_keep_size": "64MB"}
	for k, v := range c.Opts.DCSParams {
		params[k] = v
	}
	err := nodeConfig.Execute(&b, map[string]any{
		"DCSParams": params, "DCSPostgreSQL": c.Opts.DCSPostgreSQL, "Bootstrap": c.Opts.Bootstrap, "Dynamic": c.Opts.Dynamic,
		"Scope": c.Opts.Scope, "Name": n.Name, "APIPort": n.APIPort, "PGPort": n.PGPort, "APIListen": apiListen,
		"Host": n.Host, "Network": c.Opts.Network,
		"DCS": dcsYAML, "SocketDir": c.SocketDir, "DataDir": n.DataDir, "PGBinDir": c.Opts.PGBinDir, "Dir": n.Dir,
		"Extra": extra, "PGExtra": n.PGExtra,
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(n.ConfigPath, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if n.cred != nil {
		_ = os.Chown(n.ConfigPath, int(n.cred.Uid), int(n.cred.Gid))
	}
	return nil
}

// Start starts every node.
func (c *Cluster) Start() error {
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	return nil
}

// Stop terminates every node (SIGTERM, then SIGKILL after the timeout) and any postgres left.
func (c *Cluster) Stop(timeout time.Duration) {
	for _, n := range c.Nodes {
		n.Signal(syscall.SIGTERM)
	}
	for _, n := range c.Nodes {
		if !n.WaitExit(timeout) {
			n.Kill()
		}
		n.KillPostgres()
	}
	_ = os.RemoveAll(c.SocketDir)
}

// Node returns the node with this name.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Start launches the tusker process; its stderr goes to LogPath (appended).
func (n *Node) Start() error {
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if n.cred != nil {
		_ = os.Chown(n.LogPath, int(n.cred.Uid), int(n.cred.Gid))
	}
	cmd := wrapped(n.wrap, n.cred, n.bin, n.ConfigPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), n.Env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", n.Name, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	done := n.done
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	return nil
}

// wrapped is the command that runs bin with args in its own process group: as cred directly, or
// under wrap (which execs bin, so the pid is bin's own, and drops privileges itself).
func wrapped(wrap []string, cred *syscall.Credential, bin string, args ...string) *exec.Cmd {
	if len(wrap) == 0 {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
		return cmd
	}
	cmd := exec.Command(wrap[0], append(append(wrap[1:len(wrap):len(wrap)], bin), args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// Running reports whether the tusker process is alive.
func (n *Node) Running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// ExitCode is the exit code of the last tusker process (-1 while running or killed by a signal).
func (n *Node) ExitCode() int {
	if n.Running() || n.cmd == nil || n.cmd.ProcessState == nil {
		return -1
	}
	return n.cmd.ProcessState.ExitCode()
}

// Signal sends sig to the tusker process.
func (n *Node) Signal(sig syscall.Signal) {
	if n.Running() {
		_ = n.cmd.Process.Signal(sig)
	}
}

// WaitExit waits for the tusker process to exit.
func (n *Node) WaitExit(timeout time.Duration) bool {
	if n.done == nil {
		return true
	}
	select {
	case <-n.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Kill SIGKILLs the tusker process.
func (n *Node) Kill() {
	n.Signal(syscall.SIGKILL)
	n.WaitExit(10 * time.Second)
}

// PostmasterPID reads the postmaster's pid from postmaster.pid (0 if none).
func (n *Node) PostmasterPID() int {
	b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// KillPostgres SIGKILLs the postmaster, if any.
func (n *Node) KillPostgres() {
	if pid := n.PostmasterPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// KillNode is the death of a machine: tusker and postgres SIGKILLed at once.
func (n *Node) KillNode() {
	pm := n.PostmasterPID()
	n.Signal(syscall.SIGKILL)
	if pm > 0 {
		_ = syscall.Kill(pm, syscall.SIGKILL)
	}
	n.WaitExit(10 * time.Second)
	n.KillPostgres()
}

// Log returns the node's log so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.LogPath)
	return string(b)
}

// APIURL is the base URL of the node's REST API.
func (n *Node) APIURL() string {
	scheme := "http"
	if n.client != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s:%d", scheme, n.Host, n.APIPort)
}

// HTTPClient is the client that reaches the node's REST API (with the cluster's TLS settings).
func (n *Node) HTTPClient() *http.Client {
	if n.client != nil {
		return n.client
	}
	return http.DefaultClient
}

// DSN is a superuser connection string to the node's PostgreSQL.
func (n *Node) DSN() string {
	return fmt.Sprintf("host=%s port=%d user=postgres password=%s dbname=postgres connect_timeout=2 sslmode=disable",
		n.Host, n.PGPort, SuperuserPassword)
}

// Patroni is the node's GET /patroni body (nil map and an error when unreachable).
func (n *Node) Patroni(ctx context.Context) (map[string]any, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.APIURL()+"/patroni", nil)
	resp, err := n.HTTPClient().Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, resp.StatusCode, err
	}
	return m, resp.StatusCode, nil
}

// Check returns the status code of a health-check path (0 when unreachable).
func (n *Node) Check(ctx context.Context, path string) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.APIURL()+path, nil)
	resp, err := n.HTTPClient().Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Exec runs SQL on the node.
func (n *Node) Exec(ctx context.Context, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// QueryString runs a one-value query on the node.
func (n *Node) QueryString(ctx context.Context, sql string, args ...any) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var s string
	err = conn.QueryRow(ctx, sql, args...).Scan(&s)
	return s, err
}

// Primary returns the one node whose GET /primary answers 200, or an error when there is none or
// more than one.
func (c *Cluster) Primary(ctx context.Context) (*Node, error) {
	var found []*Node
	for _, n := range c.Nodes {
		if n.Running() && n.Check(ctx, "/primary") == 200 {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return nil, errors.New("no primary")
	case 1:
		return found[0], nil
	}
	names := []string{}
	for _, n := range found {
		names = append(names, n.Name)
	}
	return nil, fmt.Errorf("more than one primary: %v", names)
}

// WaitFor polls cond every interval until it returns nil or the timeout passes.
func WaitFor(ctx context.Context, timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = cond(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// Healthy checks that there is exactly one primary and every other running node is a streaming
// replica.
func (c *Cluster) Healthy(ctx context.Context) error {
	p, err := c.Primary(ctx)
	if err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if n == p || !n.Running() {
			continue
		}
		st, _, err := n.Patroni(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		if st["role"] != "replica" || st["state"] != "running" || st["replication_state"] != "streaming" {
			return fmt.Errorf("%s is not a streaming replica: role=%v state=%v replication_state=%v",
				n.Name, st["role"], st["state"], st["replication_state"])
		}
	}
	return nil
}

// PID is the tusker process id (0 when not running).
func (n *Node) PID() int {
	if !n.Running() {
		return 0
	}
	return n.cmd.Process.Pid
}
