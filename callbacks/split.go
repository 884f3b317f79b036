package callbacks

import (
	"errors"
	"fmt"
	"strings"
)

// Split splits a command line like Python's shlex.split (POSIX mode): words are separated by
// spaces, tabs, CRs and newlines; single quotes keep everything literally; inside double quotes a
// backslash escapes only `"` and `\` (any other backslash is kept); outside quotes a backslash
// makes the next character literal. There is no variable, glob or tilde expansion and `#` is an
// ordinary character, as in shlex.split's default. An empty quoted string is an empty word.
//
// Patroni splits its callback and hook settings this way, so configurations written for Patroni
// must split identically here.
func Split(cmdline string) ([]string, error) {
	const (
		plain = iota
		single
		double
	)
	var (
		words  []string
		cur    strings.Builder
		inWord bool // a word has begun, possibly as an empty quoted string
		state  = plain
	)
	// Working on bytes is safe for UTF-8: every special character is ASCII and never occurs
	// inside a multi-byte sequence, which is copied through byte by byte.
	for i := 0; i < len(cmdline); i++ {
		c := cmdline[i]
		switch state {
		case plain:
			switch c {
			case ' ', '\t', '\r', '\n':
				if inWord {
					words = append(words, cur.String())
					cur.Reset()
					inWord = false
				}
			case '\\':
				if i+1 >= len(cmdline) {
					return nil, errors.New("split command line: no character after trailing backslash")
				}
				i++
				cur.WriteByte(cmdline[i])
				inWord = true
			case '\'':
				state, inWord = single, true
			case '"':
				state, inWord = double, true
			default:
				cur.WriteByte(c)
				inWord = true
			}
		case single:
			if c == '\'' {
				state = plain
			} else {
				cur.WriteByte(c)
			}
		case double:
			switch c {
			case '"':
				state = plain
			case '\\':
				if i+1 >= len(cmdline) {
					return nil, fmt.Errorf("split command line %q: unterminated double quote", cmdline)
				}
				i++
				// shlex keeps the backslash unless it escapes a quote or another backslash.
				if n := cmdline[i]; n != '"' && n != '\\' {
					cur.WriteByte('\\')
				}
				cur.WriteByte(cmdline[i])
			default:
				cur.WriteByte(c)
			}
		}
	}
	switch state {
	case single:
		return nil, fmt.Errorf("split command line %q: unterminated single quote", cmdline)
	case double:
		return nil, fmt.Errorf("split command line %q: unterminated double quote", cmdline)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
