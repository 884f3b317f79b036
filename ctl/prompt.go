package ctl

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Prompts are written to stderr, so that stdout carries only results, and read from stdin line
// by line whether or not it is a terminal, so that scripts and tests can pipe the answers. End
// of input at a prompt aborts the command (exit 1).

// readLine reads one answer; io.EOF before any character is errAborted. When stdin is not a
// terminal nobody types the newline that ends the prompt's line, so it is written here.
func (a *app) readLine() (string, error) {
	line, err := a.in.ReadString('\n')
	if !a.env.StdinTTY && (err == nil || line != "") {
		fmt.Fprintln(a.errOut)
	}
	if err != nil {
		if errors.Is(err, io.EOF) && line == "" {
			fmt.Fprintln(a.errOut)
			return "", errAborted
		}
		if !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the answer from stdin: %w", err)
		}
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// ask asks a question with a default answer shown in brackets and returns the answer or the
// default when the answer is empty.
func (a *app) ask(question, def string) (string, error) {
	if def != "" {
		fmt.Fprintf(a.errOut, "%s [%s]: ", question, def)
	} else {
		fmt.Fprintf(a.errOut, "%s: ", question)
	}
	ans, err := a.readLine()
	if err != nil {
		return "", err
	}
	ans = strings.TrimSpace(ans)
	if ans == "" {
		return def, nil
	}
	return ans, nil
}

// confirm asks a yes/no question whose default is no; anything but yes aborts.
func (a *app) confirm(question string) error {
	for {
		fmt.Fprintf(a.errOut, "%s [y/N]: ", question)
		ans, err := a.readLine()
		if err != nil {
			return err
		}
		switch strings.ToLower(strings.TrimSpace(ans)) {
		case "y", "yes":
			return nil
		case "", "n", "no":
			return errAborted
		}
		fmt.Fprintln(a.errOut, "Error: invalid input; answer y or n")
	}
}

// confirmUnless asks unless --force was given.
func (a *app) confirmUnless(force bool, question string) error {
	if force {
		return nil
	}
	return a.confirm(question)
}

// password reads a secret without echo when stdin is a terminal.
func (a *app) password(prompt string) (string, error) {
	if a.env.ReadPassword != nil {
		return a.env.ReadPassword(prompt)
	}
	fmt.Fprintf(a.errOut, "%s: ", prompt)
	if a.env.StdinTTY {
		if restore, err := echoOff(a.env.Stdin); err == nil {
			defer func() {
				restore()
				fmt.Fprintln(a.errOut)
			}()
		}
	}
	return a.readLine()
}
