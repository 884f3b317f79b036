package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"reflect"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
)

// errConfigConflict: the config key changed between our read and our compare-and-set.
var errConfigConflict = errors.New("the configuration changed concurrently; run edit-config again")

// normalize turns decoded JSON or YAML into one canonical tree, so that an unchanged
// configuration compares equal whichever way it was read: integers are int64, other numbers
// float64, maps map[string]any.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return float64(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

// sameTree compares two normalized trees; numbers compare by value, since YAML writes the float
// 1.0 as 1 and reads it back as an integer.
func sameTree(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameTree(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameTree(x[i], y[i]) {
				return false
			}
		}
		return true
	case int64, float64:
		fa, _ := asFloat(a)
		fb, ok := asFloat(b)
		return ok && fa == fb
	}
	return reflect.DeepEqual(a, b)
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// decodeConfig reads the config key's JSON as a tree.
func decodeConfig(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("the config key is not JSON: %w", err)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := normalize(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the config key is not a JSON object")
	}
	return m, nil
}

// decodeYAMLConfig reads a configuration written as YAML (edited, --apply, --replace).
func decodeYAMLConfig(what string, b []byte) (map[string]any, error) {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s is not valid YAML: %w", what, err)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := normalize(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s must be a YAML mapping of settings", what)
	}
	return m, nil
}

// configYAML is the configuration as shown and edited: block YAML with sorted keys.
func configYAML(m map[string]any) (string, error) {
	if len(m) == 0 {
		return "{}\n", nil
	}
	b, err := marshalYAML(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// encodeConfig writes the tree as the compact JSON value of the config key.
func encodeConfig(m map[string]any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encoding the configuration as JSON: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func deepCopy(m map[string]any) map[string]any {
	return normalize(m).(map[string]any)
}

// yaml11Bools are the unquoted words PyYAML (YAML 1.1) reads as booleans in patronictl's -s
// values; yaml.v3 would keep them as strings.
var yaml11Bools = map[string]bool{"yes": true, "on": true, "true": true, "no": false, "off": false, "false": false}

// parseSetValue reads the VALUE of -s/-p as YAML: numbers, booleans, null (or nothing), lists and
// maps, anything else a string.
func parseSetValue(s string) (any, error) {
	if b, ok := yaml11Bools[strings.ToLower(strings.TrimSpace(s))]; ok {
		return b, nil
	}
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	return normalize(v), nil
}

// applySets applies -s KEY.PATH=VALUE settings: dots separate levels, except under
// postgresql.parameters where the rest is one parameter name (GUCs like auto_explain.log_min_duration
// contain dots); a null (or empty) VALUE removes the key, and maps left empty go too.
func applySets(data map[string]any, pairs []string) error {
	for _, p := range pairs {
		key, val, ok := strings.Cut(p, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
			return usagef("invalid parameter setting %q: expected KEY.PATH=VALUE", p)
		}
		v, err := parseSetValue(val)
		if err != nil {
			return usagef("invalid value in %q: %v", p, err)
		}
		setPath(data, strings.Split(key, "."), v, nil)
	}
	return nil
}

func setPath(m map[string]any, path []string, v any, prefix []string) {
	if len(prefix) == 2 && prefix[0] == "postgresql" && prefix[1] == "parameters" {
		path = []string{strings.Join(path, ".")}
	}
	k := path[0]
	if len(path) == 1 {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return
	}
	sub, ok := m[k].(map[string]any)
	if !ok {
		if v == nil {
			return // removing below a key that is not a map: nothing to remove
		}
		sub = map[string]any{}
		m[k] = sub
	}
	setPath(sub, path[1:], v, append(prefix, k))
	if len(sub) == 0 {
		delete(m, k)
	}
}

// mergePatch merges patch into m like Patroni's patch_config and JSON merge patch: maps merge,
// null deletes, anything else replaces.
func mergePatch(m, patch map[string]any) {
	for k, v := range patch {
		if v == nil {
			delete(m, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			if dm, ok := m[k].(map[string]any); ok {
				mergePatch(dm, pm)
				continue
			}
			nm := map[string]any{}
			mergePatch(nm, pm)
			m[k] = nm
			continue
		}
		m[k] = v
	}
}

// diffLines splits text into lines that keep their newline (difflib.SplitLines would add an
// empty last line).
func diffLines(s string) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] += "\n"
	}
	return lines
}

// unifiedDiff is the change as a unified diff; colored for a terminal.
func unifiedDiff(before, after string, color bool) string {
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: diffLines(before), B: diffLines(after),
		FromFile: "before", ToFile: "after", Context: 3,
	})
	if err != nil {
		return ""
	}
	if !color {
		return d
	}
	var b strings.Builder
	for l := range strings.SplitAfterSeq(d, "\n") {
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
			b.WriteString("\033[1m" + strings.TrimSuffix(l, "\n") + "\033[0m\n")
		case strings.HasPrefix(l, "+"):
			b.WriteString("\033[32m" + strings.TrimSuffix(l, "\n") + "\033[0m\n")
		case strings.HasPrefix(l, "-"):
			b.WriteString("\033[31m" + strings.TrimSuffix(l, "\n") + "\033[0m\n")
		case strings.HasPrefix(l, "@@"):
			b.WriteString("\033[36m" + strings.TrimSuffix(l, "\n") + "\033[0m\n")
		default:
			b.WriteString(l)
		}
	}
	return b.String()
}

type editOptions struct {
	group   int
	quiet   bool
	sets    []string
	pgs     []string
	apply   string
	replace string
	force   bool
}

func (a *app) editConfigCommand() *cobra.Command {
	var o editOptions
	c := &cobra.Command{
		Use:   "edit-config [CLUSTER]",
		Short: "Change the cluster-wide (dynamic) configuration",
		Long: `Change the configuration stored in the DCS that every member applies: with -s/-p
settings, a YAML file merged in (--apply) or replacing it (--replace), or else in $EDITOR.
The change is shown as a diff and, after confirmation, written with a compare-and-set: if
someone changed the configuration meanwhile nothing is written and the command fails.

-s takes KEY.PATH=VALUE where VALUE is YAML (123, true, "quoted", [a, b]); null or an empty
VALUE removes the key. -p GUC=VALUE is short for -s postgresql.parameters.GUC=VALUE.`,
		Example: `  tuskerctl edit-config -s loop_wait=2 -p max_connections=200 --force
  tuskerctl edit-config -s postgresql.parameters.work_mem=null
  tuskerctl edit-config --apply changes.yaml
  echo 'ttl: 10' | tuskerctl edit-config --apply - --force`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeClusterArg,
	}
	a.command(c, func(_ *cobra.Command, args []string) error { return a.editConfig(o, args) })
	f := c.Flags()
	groupFlag(c, &o.group)
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not show the diff")
	f.StringArrayVarP(&o.sets, "set", "s", nil, "set KEY.PATH=VALUE (VALUE is YAML; null removes the key); repeatable")
	f.StringArrayVarP(&o.pgs, "pg", "p", nil, "set the PostgreSQL parameter GUC=VALUE; repeatable")
	f.StringVar(&o.apply, "apply", "", "merge in the YAML of FILE (- for stdin)")
	f.StringVar(&o.replace, "replace", "", "replace the configuration with the YAML of FILE (- for stdin)")
	f.BoolVar(&o.force, "force", false, "do not ask for confirmation")
	return c
}

func (a *app) readInput(path string) ([]byte, error) {
	if path == "-" {
		b, err := io.ReadAll(a.in)
		if err != nil {
			return nil, fmt.Errorf("reading the configuration from stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	return b, nil
}

func (a *app) editConfig(o editOptions, args []string) error {
	if err := checkGroup(o.group); err != nil {
		return err
	}
	if o.apply == "-" && o.replace == "-" {
		return usagef("--apply - and --replace - cannot both read stdin")
	}
	sets := editSets(o)
	interactive := o.apply == "" && o.replace == "" && len(sets) == 0
	if interactive && !a.env.StdinTTY && a.env.Editor == nil {
		return usagef("nothing to change: pass -s, -p, --apply or --replace (the editor needs a terminal)")
	}
	name, err := a.clusterName(args)
	if err != nil {
		return err
	}
	c, err := a.cluster(name)
	if err != nil {
		return err
	}
	if c.Config == nil {
		return fmt.Errorf("the config key does not exist in cluster %q", name)
	}
	orig, err := decodeConfig(c.Config.Value)
	if err != nil {
		return fmt.Errorf("cluster %q: %w", name, err)
	}
	before, err := configYAML(orig)
	if err != nil {
		return err
	}
	changed, err := a.changedConfig(o, sets, orig)
	if err != nil {
		return err
	}
	if interactive {
		if changed, err = a.editInEditor(name, before); err != nil {
			return err
		}
	}
	if sameTree(orig, changed) {
		if !o.quiet {
			fmt.Fprintln(a.out, "Not changing configuration.")
		}
		return nil
	}
	value, err := a.showConfigChange(o, before, changed)
	if err != nil {
		return err
	}
	if !o.force {
		if err := a.confirmConfigChange(o); err != nil {
			return err
		}
	}
	return a.writeConfig(name, c.Config.Version, value)
}

// editSets is -s and -p as one list of KEY.PATH=VALUE settings (-p is short for a -s under
// postgresql.parameters), in the order they are applied.
func editSets(o editOptions) []string {
	sets := append([]string{}, o.sets...)
	for _, p := range o.pgs {
		sets = append(sets, "postgresql.parameters."+p)
	}
	return sets
}

// changedConfig applies the non-interactive changes to a copy of orig in their fixed order:
// --replace, then --apply merged in, then the -s/-p settings.
func (a *app) changedConfig(o editOptions, sets []string, orig map[string]any) (map[string]any, error) {
	changed := deepCopy(orig)
	if o.replace != "" {
		b, err := a.readInput(o.replace)
		if err != nil {
			return nil, err
		}
		if changed, err = decodeYAMLConfig("the --replace input", b); err != nil {
			return nil, err
		}
	}
	if o.apply != "" {
		b, err := a.readInput(o.apply)
		if err != nil {
			return nil, err
		}
		patch, err := decodeYAMLConfig("the --apply input", b)
		if err != nil {
			return nil, err
		}
		mergePatch(changed, patch)
	}
	if err := applySets(changed, sets); err != nil {
		return nil, err
	}
	return changed, nil
}

// showConfigChange encodes and validates the changed configuration, so that nothing invalid is
// shown for confirmation, and prints the diff (unless -q); it returns the config key's value.
func (a *app) showConfigChange(o editOptions, before string, changed map[string]any) ([]byte, error) {
	value, err := encodeConfig(changed)
	if err != nil {
		return nil, err
	}
	if err := checkDynamic(value); err != nil {
		return nil, err
	}
	after, err := configYAML(changed)
	if err != nil {
		return nil, err
	}
	if !o.quiet {
		fmt.Fprint(a.out, unifiedDiff(before, after, a.env.StdoutTTY))
	}
	return value, nil
}

// confirmConfigChange asks before writing; when stdin held the configuration there is no
// answer left to read, and the error says to add --force.
func (a *app) confirmConfigChange(o editOptions) error {
	if err := a.confirm("Apply these changes?"); err != nil {
		if errors.Is(err, errAborted) && (o.apply == "-" || o.replace == "-") {
			return fmt.Errorf("%w (stdin held the configuration, so there is no answer to read: add --force)", err)
		}
		return err
	}
	return nil
}

// writeConfig stores the new configuration with a compare-and-set on the version that was
// read, so that a concurrent change is never overwritten.
func (a *app) writeConfig(name string, version int64, value []byte) error {
	s, err := a.store(name)
	if err != nil {
		return err
	}
	if err := s.SetConfig(a.ctx, value, version); err != nil {
		if errors.Is(err, dcs.ErrConflict) {
			return errConfigConflict
		}
		return fmt.Errorf("writing the configuration of cluster %q: %w", name, err)
	}
	fmt.Fprintln(a.out, "Configuration changed")
	return nil
}

// checkDynamic refuses a configuration the members would ignore as invalid, with the reasons.
func checkDynamic(value []byte) error {
	d, err := config.ParseDynamic(value)
	if err != nil {
		return fmt.Errorf("the new configuration is invalid, nothing changed: %w", err)
	}
	if probs := d.Validate(); len(probs) > 0 {
		return fmt.Errorf("the new configuration is invalid, nothing changed: %s", strings.Join(probs, "; "))
	}
	return nil
}

// editInEditor lets the user edit the YAML in a temporary file and reads it back.
func (a *app) editInEditor(name, before string) (map[string]any, error) {
	f, err := os.CreateTemp("", name+"-config-*.yaml")
	if err != nil {
		return nil, fmt.Errorf("creating a file to edit the configuration in: %w", err)
	}
	path := f.Name()
	defer os.Remove(path)
	if _, err := f.WriteString(before); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	edit := a.env.Editor
	if edit == nil {
		edit = a.runEditor
	}
	if err := edit(a.ctx, path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the edited configuration: %w", err)
	}
	return decodeYAMLConfig("the edited configuration", b)
}

// runEditor runs $VISUAL, $EDITOR or vi through the shell, so that an editor with arguments
// ("code --wait") works, on the process's own terminal.
func (a *app) runEditor(ctx context.Context, path string) error {
	editor := a.getenv("VISUAL")
	if editor == "" {
		editor = a.getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", editor+` "$1"`, "sh", path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running the editor %q: %w", editor, err)
	}
	return nil
}

func (a *app) showConfigCommand() *cobra.Command {
	var group int
	c := &cobra.Command{
		Use:               "show-config [CLUSTER]",
		Short:             "Show the cluster-wide (dynamic) configuration as YAML",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeClusterArg,
	}
	a.command(c, func(_ *cobra.Command, args []string) error {
		if err := checkGroup(group); err != nil {
			return err
		}
		name, err := a.clusterName(args)
		if err != nil {
			return err
		}
		cl, err := a.cluster(name)
		if err != nil {
			return err
		}
		if cl.Config == nil {
			return fmt.Errorf("the config key does not exist in cluster %q", name)
		}
		m, err := decodeConfig(cl.Config.Value)
		if err != nil {
			return fmt.Errorf("cluster %q: %w", name, err)
		}
		y, err := configYAML(m)
		if err != nil {
			return err
		}
		fmt.Fprint(a.out, y)
		return nil
	})
	groupFlag(c, &group)
	return c
}
