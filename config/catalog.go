package config

import (
	"slices"
	"sort"
	"strings"
	"sync"
)

// The key catalog is read off the decoder itself, so that the documentation, the PATRONI_*
// variables and the tests are held to the one list of the keys tusker implements: the handler
// maps that decode.go and dcs.go give to fields. Decoding an absent configuration with a catalog
// set walks every handler of every section with a null value; leaf handlers ignore null, and a
// nested section walks its own handlers in turn.

// catalog collects the key paths met while the decoder walks an absent configuration.
type catalog struct {
	keys     []string        // paths whose handler reads a value (a leaf, a list or a free-form map)
	sections map[string]bool // paths whose handler walks a section of keys of its own
	unimpl   []string        // paths whose handler reports the key as not implemented (recovery_conf)
	integers []string        // paths whose handler reads an integer
	checked  map[string]bool // paths whose handler is an intKey's, whose range Validate checks
}

// enumerate calls every handler of the section at path with a null value, in key order, and
// files each key path by what its handler did with it.
func (c *catalog) enumerate(d *decoder, path string, handlers map[string]func(string, *node)) {
	c.sections[path] = true
	keys := make([]string, 0, len(handlers))
	for k := range handlers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := joinPath(path, k)
		before := len(d.unimpl)
		handlers[k](p, &node{kind: nullNode})
		switch {
		case slices.Contains(d.unimpl[before:], p):
			c.unimpl = append(c.unimpl, p)
		case c.sections[p]:
		default:
			c.keys = append(c.keys, p)
		}
	}
}

// keyCatalog is built once: the decoder's handlers do not change at run time.
var keyCatalog = sync.OnceValue(func() *catalog {
	c := &catalog{sections: map[string]bool{}, checked: map[string]bool{}}
	d := newDecoder()
	d.cat = c
	decodeConfig(d, &node{kind: nullNode})
	sort.Strings(c.keys)
	sort.Strings(c.unimpl)
	return c
})

// knownKeys returns the sorted key paths of the local configuration that tusker implements
// ("restapi.listen", "bootstrap.dcs.ttl", "tags.nofailover"). A list ("kubernetes.ports") or a
// free-form map ("postgresql.parameters", "kubernetes.labels") is one path; a section of keys
// ("restapi", "postgresql.authentication.superuser") is none, its keys are.
func knownKeys() []string {
	return slices.Clone(keyCatalog().keys)
}

// isKnownSection reports whether path is a section of keys the decoder walks ("restapi",
// "bootstrap.dcs"; "" is the top level).
func isKnownSection(path string) bool {
	return keyCatalog().sections[path]
}

// sectionParams returns the upper-case names of the keys directly in section (not in its
// sub-sections) followed by extra, the way PATRONI_<SECTION>_<PARAM> spells them.
func sectionParams(section string, extra ...string) []string {
	var out []string
	for _, k := range keyCatalog().keys {
		if rest, ok := strings.CutPrefix(k, section+"."); ok && !strings.Contains(rest, ".") {
			out = append(out, strings.ToUpper(rest))
		}
	}
	return append(out, extra...)
}
