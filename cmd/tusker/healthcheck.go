package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/internal/apiclient"
)

// healthcheckTimeout stays under the image's HEALTHCHECK --timeout, so that the probe reports
// its own error rather than being killed.
const healthcheckTimeout = 4 * time.Second

// defaultHealthcheckURL is probed when no configuration can be found.
const defaultHealthcheckURL = "http://127.0.0.1:8008/liveness"

// daemonConfigPath returns the configuration path that PID 1 was started with when PID 1 is
// tusker (a container), from its command line as /proc shows it (NUL-separated), and "" when
// PID 1 is something else or names no path.
func daemonConfigPath(cmdline []byte) (path string, isTusker bool) {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) == 0 || filepath.Base(args[0]) != "tusker" {
		return "", false
	}
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			return a, true
		}
	}
	return "", true
}

// healthcheckTarget is what `tusker --healthcheck` probes without a URL: /liveness on loopback at
// the REST API's port, over https when the REST API has a certificate, with the client
// certificate the member's own configuration gives. The probe runs beside the daemon with the
// container's environment but not its arguments, so it reads them from PID 1's command line
// when PID 1 is tusker, and loads the configuration as the daemon did.
func healthcheckTarget(cmdline []byte) (string, apiclient.Settings) {
	path, isTusker := daemonConfigPath(cmdline)
	if !isTusker && os.Getenv(config.EnvConfiguration) == "" && !anyPatroniEnv() {
		return defaultHealthcheckURL, apiclient.Settings{}
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tusker --healthcheck: the configuration does not load (%v); probing %s\n", err, defaultHealthcheckURL)
		return defaultHealthcheckURL, apiclient.Settings{}
	}
	port := "8008"
	if l := cfg.RestAPI.Listen; l != "" {
		if i := strings.LastIndex(l, ":"); i >= 0 && i < len(l)-1 {
			port = l[i+1:]
		}
	}
	scheme := "http"
	if cfg.RestAPI.CertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort("127.0.0.1", port) + "/liveness", apiclient.FromConfig(cfg)
}

// healthcheck GETs the URL (healthcheckTarget when empty) and returns 0 on 200, 1 otherwise, as
// a container HEALTHCHECK command must. Server certificates are not verified on loopback, where
// the probe only asks the member beside it whether its loop runs.
func healthcheck(target string) int {
	var settings apiclient.Settings
	if target == "" {
		cmdline, _ := os.ReadFile("/proc/1/cmdline")
		if os.Getpid() == 1 {
			cmdline = nil
		}
		target, settings = healthcheckTarget(cmdline)
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(os.Stderr, "tusker --healthcheck: %q is not an http(s) URL\n", target)
		return 1
	}
	if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
		settings.Insecure = true
	}
	tlsConfig, err := settings.TLSConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tusker --healthcheck: TLS settings:", err)
		return 1
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: tlsConfig},
		Timeout:       healthcheckTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tusker --healthcheck:", err)
		return 1
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tusker --healthcheck:", err)
		return 1
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	fmt.Printf("GET %s: %s\n", target, resp.Status)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
