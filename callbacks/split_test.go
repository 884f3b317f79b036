package callbacks

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The expectations are what Python's shlex.split returns for the same input.
func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   \t\n ", nil},
		{"/bin/cb.sh", []string{"/bin/cb.sh"}},
		{"  /bin/cb.sh   a\tb\nc  ", []string{"/bin/cb.sh", "a", "b", "c"}},
		{`'/opt/my scripts/cb.sh' --x`, []string{"/opt/my scripts/cb.sh", "--x"}},
		{`"/opt/my scripts/cb.sh" --x`, []string{"/opt/my scripts/cb.sh", "--x"}},
		{`a'b c'd`, []string{"ab cd"}},
		{`a "" b ''`, []string{"a", "", "b", ""}},
		{`'$HOME ~ * \n "x"'`, []string{`$HOME ~ * \n "x"`}},
		{`"a \"q\" \\ \$x \n 'y'"`, []string{`a "q" \ \$x \n 'y'`}},
		{`a\ b \'c\' \"d\" e\\f`, []string{"a b", "'c'", `"d"`, `e\f`}},
		{`x#y # z`, []string{"x#y", "#", "z"}},
		{"héllo 'wörld'", []string{"héllo", "wörld"}},
		{`\é`, []string{"é"}},
	} {
		got, err := Split(tc.in)
		require.NoError(t, err, "input %q", tc.in)
		require.Equal(t, tc.want, got, "input %q", tc.in)
	}
}

func TestSplitErrors(t *testing.T) {
	for _, in := range []string{`'abc`, `"abc`, `a "b\"`, `a 'b"`, `abc\`, `"abc\`} {
		_, err := Split(in)
		require.Error(t, err, "input %q", in)
	}
	_, err := Split(`cmd 'x`)
	require.ErrorContains(t, err, "unterminated single quote")
	_, err = Split(`cmd "x`)
	require.ErrorContains(t, err, "unterminated double quote")
}
