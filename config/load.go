package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Load reads the configuration at path (a YAML file, or a directory whose *.yml / *.yaml files
// are deep-merged in sorted filename order, later files winning), applies the PATRONI_*
// environment overrides from os.Environ(), fills the defaults and validates the result. See
// LoadWithEnv.
func Load(path string) (*Config, error) {
	return LoadWithEnv(path, os.Environ())
}

// LoadWithEnv is Load with the environment given as "KEY=value" entries.
//
// When PATRONI_CONFIGURATION is set (non-empty), its YAML document is the whole configuration:
// path is not read and the other PATRONI_* variables are ignored. Otherwise the variables are
// applied over the file(s); a path of "" configures from the environment alone.
//
// Keys that Patroni knows but tusker does not implement, and unknown keys, never fail: they are
// listed in Config.Unimplemented. Type errors and validation problems are all reported together
// in one *ValidationError, each naming its key path. Syntax errors name the file and line.
func LoadWithEnv(path string, env []string) (*Config, error) {
	return load(path, env, (*Config).Validate)
}

// LoadCtl reads a configuration for tuskerctl the way patronictl reads its own: the same file
// format and PATRONI_* overrides as Load, but only the DCS section (and the ctl section, when
// present) must be valid, so a file holding just "etcd3:" and "ctl:" is enough; a member's full
// configuration works too. scope and namespace are optional (namespace defaults to "/service").
func LoadCtl(path string, env []string) (*Config, error) {
	return load(path, env, (*Config).validateCtl)
}

// LoadCtlWith is LoadCtl where setDCS (when not nil) replaces the DCS sections before validation,
// as patronictl's --dcs-url replaces the configured DCS. setDCS sees the sections as read (to keep
// a kubernetes section's labels when the URL says kubernetes too) and sets exactly one.
func LoadCtlWith(path string, env []string, setDCS func(*Config)) (*Config, error) {
	return load(path, env, func(c *Config) error {
		if setDCS != nil {
			setDCS(c)
			c.etcdKey = ""
		}
		return c.validateCtl()
	})
}

func (c *Config) validateCtl() error {
	var problems []string
	add := func(path, format string, args ...any) {
		problems = append(problems, path+": "+fmt.Sprintf(format, args...))
	}
	c.validateDCS(add)
	if a := c.Ctl.Authentication; a != nil && a.Username == "" {
		add("ctl.authentication.username", "required when ctl.authentication is set")
	}
	if (c.Ctl.CertFile == "") != (c.Ctl.KeyFile == "") && c.Ctl.CertFile == "" {
		add("ctl.keyfile", "set without ctl.certfile")
	}
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	return nil
}

func load(path string, env []string, validate func(*Config) error) (*Config, error) {
	vars := envMap(env)
	var (
		root   *node
		source string
		err    error
	)
	if doc := vars[EnvConfiguration]; strings.TrimSpace(doc) != "" {
		source = EnvConfiguration
		if root, err = parseYAML(EnvConfiguration, []byte(doc), true); err != nil {
			return nil, fmt.Errorf("config %s: %w", EnvConfiguration, err)
		}
	} else {
		source = path
		if path == "" {
			source = "environment"
			root = newMapNode("")
		} else if root, err = readPath(path); err != nil {
			return nil, err
		}
		if root.kind == nullNode {
			root = newMapNode(root.src)
		}
		if root.kind == mapNode {
			applyEnv(root, vars)
		}
	}

	d := newDecoder()
	c := decodeConfig(d, root)
	c.Source = source
	c.Unimplemented = d.unimplementedList()
	c.sources = d.sources
	c.ApplyDefaults()

	problems := d.problems
	var verr *ValidationError
	if err := validate(c); errors.As(err, &verr) {
		for _, p := range verr.Problems {
			if !coveredBy(p, d.problems) {
				problems = append(problems, p)
			}
		}
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Source: source, Problems: problems}
	}
	return c, nil
}

// coveredBy reports whether a validation problem concerns a key that already has a type problem
// (e.g. "restapi.listen: required" after "restapi.listen: expected a string").
func coveredBy(problem string, typeProblems []string) bool {
	path, _, _ := strings.Cut(problem, ": ")
	for _, tp := range typeProblems {
		tpath, _, _ := strings.Cut(tp, ": ")
		if related(path, tpath) || related(tpath, path) {
			return true
		}
	}
	return false
}

// related reports whether key path a equals b or lies under it.
func related(a, b string) bool {
	if !strings.HasPrefix(a, b) {
		return false
	}
	return len(a) == len(b) || a[len(b)] == '.' || a[len(b)] == '['
}

// readPath reads a file, or the *.yml/*.yaml files of a directory merged in sorted order.
func readPath(path string) (*node, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !fi.IsDir() {
		return readFile(path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".yml") && !strings.HasSuffix(name, ".yaml") {
			continue
		}
		full := filepath.Join(path, name)
		// Stat follows symlinks (Kubernetes ConfigMap volumes are made of them).
		if st, err := os.Stat(full); err != nil || !st.Mode().IsRegular() {
			continue
		}
		files = append(files, full)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("config: directory %s holds no *.yml or *.yaml file", path)
	}
	var root *node
	for _, f := range files {
		n, err := readFile(f)
		if err != nil {
			return nil, err
		}
		if n.kind == nullNode {
			continue
		}
		if root == nil {
			root = n
		} else {
			root = mergeNodes(root, n)
		}
	}
	if root == nil {
		root = newMapNode("")
	}
	return root, nil
}

func readFile(path string) (*node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	n, err := parseYAML(path, data, false)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if n.kind != mapNode && n.kind != nullNode {
		return nil, fmt.Errorf("config %s: the top level must be a map of settings, got %s", path, describe(n))
	}
	return n, nil
}
