package postgres

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// SyncNames is a parsed synchronous_standby_names: commits wait for Num standbys of Names, the
// first Num connected ones in list order (FIRST) or any Num of them (ANY). The zero value is an
// empty setting: commits wait for no standby.
type SyncNames struct {
	Any   bool // ANY (quorum) rather than FIRST (priority)
	Num   int
	Names []string
}

// Empty reports whether the setting makes no commit wait.
func (s SyncNames) Empty() bool { return s.Num == 0 || len(s.Names) == 0 }

// String renders the setting the way tusker writes it: every name double-quoted, so that case
// and special characters survive.
func (s SyncNames) String() string {
	if s.Empty() {
		return ""
	}
	q := make([]string, len(s.Names))
	for i, n := range s.Names {
		if n == "*" {
			q[i] = n
			continue
		}
		q[i] = `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
	}
	method := "FIRST"
	if s.Any {
		method = "ANY"
	}
	return fmt.Sprintf("%s %d (%s)", method, s.Num, strings.Join(q, ","))
}

// Has reports whether name is listed (case-insensitively, as PostgreSQL matches application
// names against the list); "*" matches every name.
func (s SyncNames) Has(name string) bool {
	for _, n := range s.Names {
		if n == "*" || strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// ParseSyncNames parses synchronous_standby_names in PostgreSQL's grammar: "", "a, b" (FIRST 1),
// "2 (a, b)" (FIRST 2), "FIRST 2 (a, b)", "ANY 2 (a, b)", with double-quoted names.
func ParseSyncNames(v string) (SyncNames, error) {
	toks, err := syncTokens(v)
	if err != nil {
		return SyncNames{}, fmt.Errorf("synchronous_standby_names %q: %w", v, err)
	}
	if len(toks) == 0 {
		return SyncNames{}, nil
	}
	out := SyncNames{Num: 1}
	i := 0
	word := func(t syncToken, w string) bool { return !t.quoted && strings.EqualFold(t.text, w) }
	if len(toks) >= 3 && (word(toks[0], "ANY") || word(toks[0], "FIRST")) && isNum(toks[1]) && toks[2].text == "(" && !toks[2].quoted {
		out.Any = word(toks[0], "ANY")
		out.Num, _ = strconv.Atoi(toks[1].text)
		i = 3
	} else if len(toks) >= 2 && isNum(toks[0]) && toks[1].text == "(" && !toks[1].quoted {
		out.Num, _ = strconv.Atoi(toks[0].text)
		i = 2
	}
	paren := i > 0
	for {
		if i >= len(toks) {
			return SyncNames{}, fmt.Errorf("synchronous_standby_names %q: a standby name is missing", v)
		}
		t := toks[i]
		if !t.quoted && (t.text == "(" || t.text == ")" || t.text == ",") {
			return SyncNames{}, fmt.Errorf("synchronous_standby_names %q: unexpected %q", v, t.text)
		}
		out.Names = append(out.Names, t.text)
		i++
		if i < len(toks) && !toks[i].quoted && toks[i].text == "," {
			i++
			continue
		}
		break
	}
	if paren {
		if i >= len(toks) || toks[i].quoted || toks[i].text != ")" {
			return SyncNames{}, fmt.Errorf("synchronous_standby_names %q: missing )", v)
		}
		i++
	}
	if i != len(toks) {
		return SyncNames{}, fmt.Errorf("synchronous_standby_names %q: unexpected %q", v, toks[i].text)
	}
	if out.Num <= 0 {
		return SyncNames{}, fmt.Errorf("synchronous_standby_names %q: the number of standbys must be positive", v)
	}
	return out, nil
}

type syncToken struct {
	text   string
	quoted bool
}

func isNum(t syncToken) bool {
	if t.quoted || t.text == "" {
		return false
	}
	for _, r := range t.text {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func syncTokens(v string) ([]syncToken, error) {
	var out []syncToken
	rs := []rune(v)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '(' || r == ')' || r == ',':
			out = append(out, syncToken{text: string(r)})
			i++
		case r == '"':
			var b strings.Builder
			i++
			for {
				if i >= len(rs) {
					return nil, fmt.Errorf("unterminated quoted name")
				}
				if rs[i] == '"' {
					if i+1 < len(rs) && rs[i+1] == '"' {
						b.WriteRune('"')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteRune(rs[i])
				i++
			}
			out = append(out, syncToken{text: b.String(), quoted: true})
		default:
			j := i
			for j < len(rs) && !unicode.IsSpace(rs[j]) && !strings.ContainsRune(`(),"`, rs[j]) {
				j++
			}
			out = append(out, syncToken{text: string(rs[i:j])})
			i = j
		}
	}
	return out, nil
}
