package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Output formats of list, history, query and remove (-f/--format).
const (
	fmtPretty = "pretty"
	fmtTSV    = "tsv"
	fmtJSON   = "json"
	fmtYAML   = "yaml"
)

func parseFormat(s string, allowed ...string) (string, error) {
	f := strings.ToLower(strings.TrimSpace(s))
	if f == "yml" {
		f = fmtYAML
	}
	if !slices.Contains(allowed, f) {
		return "", usagef("unknown format %q (one of %s)", s, strings.Join(allowed, ", "))
	}
	return f, nil
}

// table is tabular output in one of the formats. Cells hold strings, integers, floats, nil
// (empty) or maps (tags, shown as YAML).
type table struct {
	title   string // pretty: written into the top border, patronictl's "+ Cluster: x (id) ---+"
	columns []string
	right   map[string]bool // right-aligned columns (numbers)
	rows    [][]any
	// omitEmpty leaves empty cells out of JSON and YAML objects, as patronictl does for the member
	// list (a leader has no lag, a replica no pending restart).
	omitEmpty bool
	// skip is the number of leading columns the pretty format leaves out because the title
	// already says them (the cluster name).
	skip      int
	delimiter string // tsv; default tab
}

func (t *table) write(w io.Writer, format string) error {
	var err error
	switch format {
	case fmtJSON:
		err = t.writeJSON(w)
	case fmtYAML:
		err = t.writeYAML(w)
	case fmtTSV:
		err = t.writeTSV(w)
	default:
		err = t.writePretty(w)
	}
	if err != nil {
		return fmt.Errorf("writing the output: %w", err)
	}
	return nil
}

func (t *table) writeTSV(w io.Writer) error {
	d := t.delimiter
	if d == "" {
		d = "\t"
	}
	var b strings.Builder
	b.WriteString(strings.Join(t.columns, d))
	b.WriteByte('\n')
	for _, r := range t.rows {
		cells := make([]string, len(r))
		for i, v := range r {
			cells[i] = cellText(v, true)
		}
		b.WriteString(strings.Join(cells, d))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// objects turns the rows into ordered key/value lists for JSON and YAML.
func (t *table) objects() [][]kv {
	out := make([][]kv, 0, len(t.rows))
	for _, r := range t.rows {
		obj := make([]kv, 0, len(r))
		for i, v := range r {
			if t.omitEmpty && cellText(v, true) == "" {
				continue
			}
			obj = append(obj, kv{t.columns[i], v})
		}
		out = append(out, obj)
	}
	return out
}

type kv struct {
	k string
	v any
}

// writeJSON writes one line like Python's json.dumps (which patronictl uses): ", " and ": "
// separators, keys in column order.
func (t *table) writeJSON(w io.Writer) error {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, obj := range t.objects() {
		if i > 0 {
			b.WriteString(", ")
		}
		writeJSONValue(&b, obj)
	}
	b.WriteString("]\n")
	_, err := w.Write(b.Bytes())
	return err
}

func writeJSONValue(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case []kv:
		b.WriteByte('{')
		for i, p := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, p.k)
			b.WriteString(": ")
			writeJSONValue(b, p.v)
		}
		b.WriteByte('}')
	case map[string]any:
		keys := sortedKeys(x)
		pairs := make([]kv, len(keys))
		for i, k := range keys {
			pairs[i] = kv{k, x[k]}
		}
		writeJSONValue(b, pairs)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONValue(b, e)
		}
		b.WriteByte(']')
	case string:
		writeJSONString(b, x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b.WriteString("null")
			return
		}
		b.WriteString(strconv.FormatFloat(x, 'f', -1, 64))
	default:
		enc, err := json.Marshal(x)
		if err != nil {
			writeJSONString(b, fmt.Sprint(x))
			return
		}
		b.Write(enc)
	}
}

func writeJSONString(b *bytes.Buffer, s string) {
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b.Write(bytes.TrimSuffix(tmp.Bytes(), []byte("\n")))
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// writeYAML writes a list of mappings with sorted keys, as PyYAML's safe_dump does for patronictl.
func (t *table) writeYAML(w io.Writer) error {
	list := make([]map[string]any, 0, len(t.rows))
	for _, obj := range t.objects() {
		m := make(map[string]any, len(obj))
		for _, p := range obj {
			m[p.k] = p.v
		}
		list = append(list, m)
	}
	b, err := marshalYAML(list)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// marshalYAML writes block-style YAML indented by two spaces.
func marshalYAML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding YAML: %w", err)
	}
	return b.Bytes(), nil
}

// cellText is a cell as text; maps become YAML, in flow style on one line when flow is set.
func cellText(v any, flow bool) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case map[string]any:
		if len(x) == 0 {
			return ""
		}
		return yamlText(x, flow)
	}
	return fmt.Sprint(v)
}

func yamlText(v any, flow bool) string {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	if flow {
		n.Style = yaml.FlowStyle
	}
	b, err := marshalYAML(&n)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimRight(string(b), "\n")
}

// writePretty draws the table like Python's prettytable as patronictl configures it: a frame of
// "+", "-" and "|", one space of padding, the title written over the top border, and rules
// between all rows as soon as one cell spans several lines.
func (t *table) writePretty(w io.Writer) error {
	l := t.prettyLayout()
	hline := l.rule()
	var b strings.Builder
	b.WriteString(topBorder(hline, t.title))
	b.WriteByte('\n')
	l.writeLine(&b, l.cols)
	b.WriteString(hline)
	b.WriteByte('\n')
	for r, row := range l.rows {
		if r > 0 && l.multiline {
			b.WriteString(hline)
			b.WriteByte('\n')
		}
		l.writeRow(&b, row)
	}
	b.WriteString(hline)
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// prettyLayout is the table's pretty cells split into lines and measured: the widths must be
// known before the first border is drawn.
type prettyLayout struct {
	cols      []string     // the columns shown (without the skipped ones)
	rows      [][][]string // row, column, line
	width     []int        // of each column, in runes
	right     map[string]bool
	multiline bool // some cell spans several lines
}

// prettyLayout lays the rows out for writePretty; the skipped leading columns are left out.
func (t *table) prettyLayout() prettyLayout {
	cols := t.columns[t.skip:]
	l := prettyLayout{cols: cols, rows: make([][][]string, len(t.rows)), width: make([]int, len(cols)), right: t.right}
	for i, c := range cols {
		l.width[i] = utf8.RuneCountInString(c)
	}
	for r, row := range t.rows {
		l.rows[r] = make([][]string, len(cols))
		for i := range cols {
			var v any
			if i+t.skip < len(row) {
				v = row[i+t.skip]
			}
			lines := strings.Split(cellText(v, false), "\n")
			if len(lines) > 1 {
				l.multiline = true
			}
			l.rows[r][i] = lines
			for _, s := range lines {
				l.width[i] = max(l.width[i], utf8.RuneCountInString(s))
			}
		}
	}
	return l
}

// rule is the horizontal border: "+" and, over each column and its padding, "-".
func (l prettyLayout) rule() string {
	var rule strings.Builder
	rule.WriteByte('+')
	for _, wd := range l.width {
		rule.WriteString(strings.Repeat("-", wd+2))
		rule.WriteByte('+')
	}
	return rule.String()
}

// topBorder is the rule with the title, if any, over it: prettytable's header injection, where
// the title replaces the start of the border, cut to leave its first and last character.
func topBorder(hline, title string) string {
	if title == "" {
		return hline
	}
	r := []rune(hline)
	t := []rune(title)
	if len(t) > len(r)-2 {
		t = t[:max(len(r)-2, 0)]
	}
	return string(r[0]) + string(t) + string(r[1+len(t):])
}

// writeLine writes one line of text cells between "|", each padded to its column's width.
func (l prettyLayout) writeLine(b *strings.Builder, cells []string) {
	b.WriteByte('|')
	for i, c := range cells {
		pad := l.width[i] - utf8.RuneCountInString(c)
		b.WriteByte(' ')
		if l.right[l.cols[i]] {
			b.WriteString(strings.Repeat(" ", pad))
			b.WriteString(c)
		} else {
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", pad))
		}
		b.WriteString(" |")
	}
	b.WriteByte('\n')
}

// writeRow writes one row as many lines high as its tallest cell; shorter cells are blank below.
func (l prettyLayout) writeRow(b *strings.Builder, row [][]string) {
	height := 1
	for _, c := range row {
		height = max(height, len(c))
	}
	for n := range height {
		cells := make([]string, len(l.cols))
		for i, c := range row {
			if n < len(c) {
				cells[i] = c[n]
			}
		}
		l.writeLine(b, cells)
	}
}
