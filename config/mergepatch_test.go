package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMergePatch(t *testing.T) {
	for _, tc := range []struct{ doc, patch, want, err string }{
		{doc: `{"ttl":30}`, patch: `{"pause":true}`, want: `{"pause":true,"ttl":30}`},
		{doc: `{"ttl":30,"pause":true}`, patch: `{"pause":null}`, want: `{"ttl":30}`},
		{doc: `{"postgresql":{"parameters":{"a":"1","b":"2"}}}`, patch: `{"postgresql":{"parameters":{"a":null,"c":3}}}`,
			want: `{"postgresql":{"parameters":{"b":"2","c":3}}}`},
		{doc: `{"x":[1,2]}`, patch: `{"x":[3]}`, want: `{"x":[3]}`},
		{doc: `{"x":1}`, patch: `{"x":{"y":null,"z":1}}`, want: `{"x":{"z":1}}`},
		{doc: ``, patch: `{"a":1}`, want: `{"a":1}`},
		{doc: `null`, patch: `{}`, want: `{}`},
		{doc: `{}`, patch: `[1]`, err: "patch must be a JSON object, got an array"},
		{doc: `{}`, patch: `nul`, err: "patch is not JSON"},
		{doc: `"s"`, patch: `{}`, err: "current value must be a JSON object, got a string"},
	} {
		got, err := MergePatch([]byte(tc.doc), []byte(tc.patch))
		if tc.err != "" {
			require.Error(t, err, tc.patch)
			assert.Contains(t, err.Error(), tc.err)
			continue
		}
		require.NoError(t, err)
		assert.JSONEq(t, tc.want, string(got), tc.patch)
	}
}
