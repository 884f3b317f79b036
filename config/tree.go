package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The input (YAML files, PATRONI_* variables, the DCS JSON) is first read into a generic tree of
// nodes that remember where they came from, merged, and only then walked into the typed structs.

type nodeKind int

const (
	nullNode nodeKind = iota
	scalarNode
	mapNode
	listNode
)

// node is one value of the generic tree.
type node struct {
	kind nodeKind
	val  any    // scalarNode: string, bool, int, uint64 or float64, as the parser typed it
	text string // scalarNode: the literal text (what a string field receives)
	keys []string
	m    map[string]*node
	list []*node
	src  string // "at <file>:<line>", "from PATRONI_NAME" or "" when unknown
}

func newMapNode(src string) *node {
	return &node{kind: mapNode, m: map[string]*node{}, src: src}
}

func stringNode(s, src string) *node {
	return &node{kind: scalarNode, val: s, text: s, src: src}
}

// set adds or replaces a key, keeping the order of first appearance.
func (n *node) set(k string, v *node) {
	if _, ok := n.m[k]; !ok {
		n.keys = append(n.keys, k)
	}
	n.m[k] = v
}

func (n *node) del(k string) {
	if _, ok := n.m[k]; !ok {
		return
	}
	delete(n.m, k)
	for i, kk := range n.keys {
		if kk == k {
			n.keys = append(n.keys[:i:i], n.keys[i+1:]...)
			break
		}
	}
}

// setPath sets the value at a key path, creating (or replacing non-map) intermediate nodes.
func (n *node) setPath(v *node, path ...string) {
	cur := n
	for _, k := range path[:len(path)-1] {
		next := cur.m[k]
		if next == nil || next.kind != mapNode {
			next = newMapNode(v.src)
			cur.set(k, next)
		}
		cur = next
	}
	cur.set(path[len(path)-1], v)
}

// toAny converts the node to plain JSON-compatible Go values: map[string]any, []any, string,
// bool, int, uint64, float64 or nil.
func (n *node) toAny() any {
	if n == nil {
		return nil
	}
	switch n.kind {
	case mapNode:
		m := make(map[string]any, len(n.keys))
		for _, k := range n.keys {
			m[k] = n.m[k].toAny()
		}
		return m
	case listNode:
		l := make([]any, len(n.list))
		for i, it := range n.list {
			l[i] = it.toAny()
		}
		return l
	case scalarNode:
		return n.val
	}
	return nil
}

// describe renders a node for "got ..." in error messages.
func describe(n *node) string {
	if n == nil {
		return "nothing"
	}
	switch n.kind {
	case mapNode:
		return "a map"
	case listNode:
		return "a list"
	case nullNode:
		return "null"
	}
	if _, ok := n.val.(string); ok {
		return strconv.Quote(n.text)
	}
	return n.text
}

// mergeNodes deep-merges src over dst the way Patroni merges the files of a configuration
// directory: maps are merged key by key, a null value removes the key, anything else replaces.
func mergeNodes(dst, src *node) *node {
	if dst == nil || dst.kind != mapNode || src.kind != mapNode {
		return src
	}
	for _, k := range src.keys {
		v := src.m[k]
		switch {
		case v.kind == nullNode:
			dst.del(k)
		case dst.m[k] != nil:
			dst.set(k, mergeNodes(dst.m[k], v))
		default:
			dst.set(k, v)
		}
	}
	return dst
}

// Limits that keep alias expansion ("billion laughs") and pathological nesting in check.
const (
	maxNodes = 1_000_000
	maxDepth = 200
)

type yamlConverter struct {
	source string // file name or variable name used in node.src
	env    bool   // source is an environment variable: "from X" instead of "at X:line"
	count  int
}

// parseYAML parses one YAML document into a node tree. The returned error carries the line.
func parseYAML(source string, data []byte, fromEnv bool) (*node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	c := &yamlConverter{source: source, env: fromEnv}
	return c.convert(&doc, 0)
}

func (c *yamlConverter) src(line int) string {
	if c.env {
		if line > 1 {
			return fmt.Sprintf("from %s, line %d", c.source, line)
		}
		return "from " + c.source
	}
	return fmt.Sprintf("at %s:%d", c.source, line)
}

func (c *yamlConverter) convert(y *yaml.Node, depth int) (*node, error) {
	c.count++
	if c.count > maxNodes {
		return nil, errors.New("document too large (more than 1000000 values after alias expansion)")
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("line %d: nesting deeper than %d levels (recursive alias?)", y.Line, maxDepth)
	}
	src := c.src(y.Line)
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return &node{kind: nullNode, src: src}, nil
		}
		return c.convert(y.Content[0], depth+1)
	case yaml.AliasNode:
		if y.Alias == nil {
			return nil, fmt.Errorf("line %d: unknown alias", y.Line)
		}
		return c.convert(y.Alias, depth+1)
	case yaml.ScalarNode:
		return c.scalar(y, src)
	case yaml.SequenceNode:
		n := &node{kind: listNode, src: src}
		for _, it := range y.Content {
			v, err := c.convert(it, depth+1)
			if err != nil {
				return nil, err
			}
			n.list = append(n.list, v)
		}
		return n, nil
	case yaml.MappingNode:
		n := newMapNode(src)
		var merges []*yaml.Node
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				merges = append(merges, v)
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a mapping key must be a plain value", k.Line)
			}
			child, err := c.convert(v, depth+1)
			if err != nil {
				return nil, err
			}
			n.set(k.Value, child)
		}
		// "<<: *anchor" merge keys: explicit keys win, earlier merged maps win over later ones.
		for _, mv := range merges {
			if err := c.mergeInto(n, mv, depth+1); err != nil {
				return nil, err
			}
		}
		return n, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", y.Line)
}

func (c *yamlConverter) mergeInto(n *node, y *yaml.Node, depth int) error {
	for y.Kind == yaml.AliasNode && y.Alias != nil {
		y = y.Alias
	}
	switch y.Kind {
	case yaml.SequenceNode:
		for _, it := range y.Content {
			if err := c.mergeInto(n, it, depth+1); err != nil {
				return err
			}
		}
		return nil
	case yaml.MappingNode:
		m, err := c.convert(y, depth)
		if err != nil {
			return err
		}
		for _, k := range m.keys {
			if _, ok := n.m[k]; !ok {
				n.set(k, m.m[k])
			}
		}
		return nil
	case yaml.ScalarNode:
		if y.ShortTag() == "!!null" {
			return nil
		}
	}
	return fmt.Errorf("line %d: a merge key (<<) needs a map or a list of maps", y.Line)
}

func (c *yamlConverter) scalar(y *yaml.Node, src string) (*node, error) {
	tag := y.ShortTag()
	n := &node{kind: scalarNode, text: y.Value, val: y.Value, src: src}
	switch tag {
	case "!!null":
		return &node{kind: nullNode, src: src}, nil
	case "!!int", "!!float", "!!bool":
		var v any
		if err := y.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", y.Line, err)
		}
		if f, ok := v.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
			break // not representable in JSON: keep the text
		}
		if i, ok := v.(int64); ok && i == int64(int(i)) {
			v = int(i)
		}
		n.val = v
	}
	// Everything else (strings, timestamps, binary, custom tags) stays a string.
	return n, nil
}

// fromJSON decodes a JSON document into a node tree. Numbers become int when integral and in
// range, float64 otherwise.
func fromJSON(data []byte) (*node, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return fromAny(v), nil
}

// fromAny converts plain Go values (as produced by encoding/json or toAny) into nodes.
func fromAny(v any) *node {
	switch x := v.(type) {
	case nil:
		return &node{kind: nullNode}
	case map[string]any:
		n := newMapNode("")
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			n.set(k, fromAny(x[k]))
		}
		return n
	case []any:
		n := &node{kind: listNode}
		for _, it := range x {
			n.list = append(n.list, fromAny(it))
		}
		return n
	case []string:
		n := &node{kind: listNode}
		for _, it := range x {
			n.list = append(n.list, stringNode(it, ""))
		}
		return n
	case json.Number:
		s := x.String()
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return &node{kind: scalarNode, val: int(i), text: s}
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return &node{kind: scalarNode, val: f, text: s}
		}
		return stringNode(s, "")
	case string:
		return stringNode(x, "")
	case bool:
		return &node{kind: scalarNode, val: x, text: strconv.FormatBool(x)}
	case float64:
		return &node{kind: scalarNode, val: x, text: strconv.FormatFloat(x, 'f', -1, 64)}
	case int:
		return &node{kind: scalarNode, val: x, text: strconv.Itoa(x)}
	case int64:
		return &node{kind: scalarNode, val: int(x), text: strconv.FormatInt(x, 10)}
	case uint64:
		return &node{kind: scalarNode, val: x, text: strconv.FormatUint(x, 10)}
	}
	s := fmt.Sprint(v)
	return &node{kind: scalarNode, val: s, text: s}
}
