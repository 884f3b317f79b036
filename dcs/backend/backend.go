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
	"github.com/tusker-ha/tusker/dcs/etcd"
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
	return nil, errors.New("no DCS configured (etcd3)")
}
