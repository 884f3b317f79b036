// Command tuskerctl is tusker's operator CLI (patronictl-compatible subcommands; minimal for now).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/ctl"
	"github.com/tusker-ha/tusker/dcs/etcd"
)

var version = "0.1.0-dev"

func main() { os.Exit(run(os.Args[1:])) }

func usage() {
	fmt.Fprint(os.Stderr, `usage: tuskerctl [-c CONFIG] COMMAND
commands:
  list      show the members of the cluster (from the DCS)
  version   print tuskerctl's version
CONFIG is the tusker/Patroni YAML (default $PATRONICTL_CONFIG_FILE).
`)
}

func run(args []string) int {
	fs := flag.NewFlagSet("tuskerctl", flag.ContinueOnError)
	fs.Usage = usage
	cfgPath := fs.String("c", os.Getenv("PATRONICTL_CONFIG_FILE"), "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch fs.Arg(0) {
	case "version":
		fmt.Println("tuskerctl", version)
		return 0
	case "list":
	default:
		usage()
		return 2
	}
	if *cfgPath == "" {
		fmt.Fprintln(os.Stderr, "tuskerctl: no configuration: pass -c CONFIG or set PATRONICTL_CONFIG_FILE")
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tuskerctl:", err)
		return 1
	}
	proto := cfg.Etcd3.Protocol
	if proto == "" {
		proto = "http"
	}
	var eps []string
	for _, h := range cfg.Etcd3.Hosts {
		eps = append(eps, proto+"://"+h)
	}
	store, err := etcd.New(etcd.Options{Endpoints: eps, Username: cfg.Etcd3.Username, Password: cfg.Etcd3.Password,
		CACert: cfg.Etcd3.CACert, Cert: cfg.Etcd3.Cert, Key: cfg.Etcd3.Key,
		Namespace: cfg.Namespace, Scope: cfg.Scope, Name: "tuskerctl", RetryTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "tuskerctl:", err)
		return 1
	}
	defer store.Close()
	c, err := store.Cluster(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "tuskerctl:", err)
		return 1
	}
	if len(c.Members) == 0 && c.Initialize == nil {
		fmt.Fprintf(os.Stderr, "tuskerctl: cluster %q not found in %s\n", cfg.Scope, cfg.Namespace)
		return 1
	}
	if err := ctl.List(os.Stdout, cfg.Scope, c); err != nil {
		fmt.Fprintln(os.Stderr, "tuskerctl:", err)
		return 1
	}
	return 0
}
