package main

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

func TestParseSmapsRollup(t *testing.T) {
	const sample = `55d0c0000000-7ffd5b9f2000 ---p 00000000 00:00 0                          [rollup]
Rss:               33012 kB
Pss:               14321 kB
Pss_Dirty:          8000 kB
Pss_Anon:           7996 kB
Pss_File:           6325 kB
Pss_Shmem:             0 kB
Shared_Clean:      24000 kB
Anonymous:          7996 kB
`
	m, err := parseSmaps(bufio.NewScanner(strings.NewReader(sample)))
	if err != nil {
		t.Fatal(err)
	}
	if m.rss != 33012 || m.pss != 14321 || m.anon != 7996 || m.pssAnon != 7996 || m.pssFile != 6325 {
		t.Fatalf("parsed %+v", m)
	}
	if _, err := parseSmaps(bufio.NewScanner(strings.NewReader("nothing here\n"))); err == nil {
		t.Fatal("no error for a file without the figures")
	}
}

func TestReadSmapsOfThisProcess(t *testing.T) {
	m, err := readSmaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.rss <= 0 || m.pss <= 0 || m.pss > m.rss || m.anon > m.rss {
		t.Fatalf("implausible figures %+v", m)
	}
}
