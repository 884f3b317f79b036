// Package backend opens the DCS a configuration names, for the daemon and for tuskerctl alike, so
// both reach the store with the same endpoints, credentials and TLS settings.
package backend

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/dcs/consul"
	"github.com/tusker-ha/tusker/dcs/etcd"
	"github.com/tusker-ha/tusker/dcs/kubernetes"
	"github.com/tusker-ha/tusker/dcs/zookeeper"
)

// Options are what differs between the callers of Open.
type Options struct {
	Scope string // default cfg.Scope
	Name  string // member name; default cfg.Name
	// TTL and RetryTimeout default to the bootstrap dynamic configuration's ttl and retry_timeout.
	TTL, RetryTimeout time.Duration
	Logger            *slog.Logger
}

// Open connects to the DCS of cfg (it does not wait for the store to answer).
func Open(cfg *config.Config, o Options) (dcs.DCS, error) {
	if o.Scope == "" {
		o.Scope = cfg.Scope
	}
	if o.Name == "" {
		o.Name = cfg.Name
	}
	ttl, _, retry := cfg.Bootstrap.DCS.TimingDurations()
	if o.TTL == 0 {
		o.TTL = ttl
	}
	if o.RetryTimeout == 0 {
		o.RetryTimeout = retry
	}
	switch {
	case cfg.Etcd3 != nil:
		return openEtcd(cfg, o)
	case cfg.Consul != nil:
		return openConsul(cfg, o)
	case cfg.ZooKeeper != nil:
		return openZooKeeper(cfg, o)
	case cfg.Kubernetes != nil:
		return openKubernetes(cfg, o)
	}
	return nil, errors.New("no DCS configured (etcd3, consul, zookeeper or kubernetes)")
}

// openEtcd maps the etcd3 section onto the etcd backend: its hosts become endpoints with the
// section's protocol (http by default).
func openEtcd(cfg *config.Config, o Options) (dcs.DCS, error) {
	e := cfg.Etcd3
	proto := e.Protocol
	if proto == "" {
		proto = "http"
	}
	eps := make([]string, 0, len(e.Hosts))
	for _, h := range e.Hosts {
		eps = append(eps, proto+"://"+h)
	}
	b, err := etcd.New(etcd.Options{
		Endpoints: eps, Username: e.Username, Password: e.Password,
		CACert: e.CACert, Cert: e.Cert, Key: e.Key,
		Namespace: cfg.Namespace, Scope: o.Scope, Name: o.Name,
		TTL: o.TTL, RetryTimeout: o.RetryTimeout, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("opening etcd at %v: %w", e.Hosts, err)
	}
	return b, nil
}

// openConsul maps the consul section onto the Consul backend; the section's url, or its host and
// port, give the agent's address and scheme.
func openConsul(cfg *config.Config, o Options) (dcs.DCS, error) {
	c := cfg.Consul
	addr, scheme, err := c.Address()
	if err != nil {
		return nil, err
	}
	b, err := consul.New(consul.Options{
		Address: addr, Scheme: scheme, Token: c.Token, CACert: c.CACert, Cert: c.Cert, Key: c.Key,
		Verify: c.Verify, DC: c.DC, Consistency: c.Consistency, Checks: c.Checks,
		RegisterService: c.RegisterService, ServiceTags: c.ServiceTags,
		ServiceCheckInterval: c.ServiceCheckInterval, ServiceCheckTLSServerName: c.ServiceCheckTLSServerName,
		Namespace: cfg.Namespace, Scope: o.Scope, Name: o.Name,
		TTL: o.TTL, RetryTimeout: o.RetryTimeout, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("opening consul at %s: %w", addr, err)
	}
	return b, nil
}

// openZooKeeper maps the zookeeper section onto the ZooKeeper backend; its auth_data map becomes
// the scheme and credential pairs the client authenticates with.
func openZooKeeper(cfg *config.Config, o Options) (dcs.DCS, error) {
	z := cfg.ZooKeeper
	var auth []zookeeper.AuthData
	for scheme, cred := range z.AuthData {
		auth = append(auth, zookeeper.AuthData{Scheme: scheme, Credential: cred})
	}
	b, err := zookeeper.New(zookeeper.Options{
		Hosts: z.Hosts, UseSSL: z.UseSSL, CACert: z.CACert, Cert: z.Cert, Key: z.Key,
		KeyPassword: z.KeyPassword, Verify: z.Verify, SetACLs: z.SetACLs, AuthData: auth,
		Namespace: cfg.Namespace, Scope: o.Scope, Name: o.Name,
		TTL: o.TTL, RetryTimeout: o.RetryTimeout, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("opening zookeeper at %v: %w", z.Hosts, err)
	}
	return b, nil
}

// openKubernetes maps the kubernetes section onto the Kubernetes backend. Its namespace is the
// section's own (the top-level namespace is the other stores' key prefix).
func openKubernetes(cfg *config.Config, o Options) (dcs.DCS, error) {
	k := cfg.Kubernetes
	ports := make([]kubernetes.Port, 0, len(k.Ports))
	for _, p := range k.Ports {
		ports = append(ports, kubernetes.Port{Name: p.Name, Port: int32(p.Port), Protocol: p.Protocol})
	}
	b, err := kubernetes.New(kubernetes.Options{
		Namespace: k.Namespace, Scope: o.Scope, Name: o.Name, Labels: k.Labels,
		ScopeLabel: k.ScopeLabel, RoleLabel: k.RoleLabel, LeaderLabelValue: k.LeaderLabelValue,
		FollowerLabelValue: k.FollowerLabelValue, StandbyLeaderLabelValue: k.StandbyLeaderLabelValue,
		TmpRoleLabel: k.TmpRoleLabel, BootstrapLabels: k.BootstrapLabels,
		UseEndpoints: k.UseEndpoints, UseLeases: k.UseLeases, PodIP: k.PodIP, Ports: ports,
		CACert: k.CACert, Context: k.Context, RetriableHTTPCodes: k.RetriableHTTPCodes,
		TTL: o.TTL, RetryTimeout: o.RetryTimeout, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the Kubernetes API: %w", err)
	}
	return b, nil
}
