package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/tusker-ha/tusker/dcs"
)

type queryOptions struct {
	group     int
	role      string
	member    string
	dbname    string
	user      string
	password  bool
	format    string
	file      string
	command   string
	delimiter string
	watch     float64
	watchW    bool
}

func (a *app) queryCommand() *cobra.Command {
	var o queryOptions
	c := &cobra.Command{
		Use:   "query [CLUSTER]",
		Short: "Run SQL on a member (the leader by default)",
		Long: `Run SQL on the leader (default), on the first reachable member with --role, or on the
member named with --member, connecting to the conn_url the member publishes. Credentials come
from -U/--password or libpq's environment (PGUSER, PGPASSWORD, ~/.pgpass).

As in patronictl, -c and -d here are the SQL and the database; the global --config-file and
--dcs-url keep their long names (or go before the command: tuskerctl -c CONFIG query ...).`,
		Example: `  PGPASSWORD=secret tuskerctl query -U postgres -c 'select pg_is_in_recovery()'
  tuskerctl query -r replica -f check.sql --format json`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeClusterArg,
	}
	a.command(c, func(cmd *cobra.Command, args []string) error { return a.query(cmd, o, args) })
	f := c.Flags()
	groupFlag(c, &o.group)
	f.StringVarP(&o.role, "role", "r", "", "run on a member with this role: "+strings.Join(roleNames, ", ")+" (default leader)")
	f.StringVarP(&o.member, "member", "m", "", "run on this member")
	f.StringVarP(&o.dbname, "dbname", "d", "", "database (default: the one in the member's conn_url)")
	f.StringVarP(&o.user, "username", "U", "", "database user (default $PGUSER, else the OS user)")
	f.BoolVar(&o.password, "password", false, "ask for the password")
	f.StringVar(&o.format, "format", fmtTSV, "output format: pretty, tsv, json or yaml")
	f.StringVarP(&o.file, "file", "f", "", "read the SQL from FILE (- for stdin)")
	f.StringVarP(&o.command, "command", "c", "", "the SQL to run")
	f.StringVar(&o.delimiter, "delimiter", "\t", "column delimiter of the tsv format")
	f.BoolVarP(&o.watchW, "watch-2s", "W", false, "run again every 2 seconds until interrupted")
	f.Float64VarP(&o.watch, "watch", "w", 0, "run again every SEC seconds until interrupted")
	_ = c.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(roleNames, cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("member", a.completeMemberFlag)
	return c
}

func (a *app) query(cmd *cobra.Command, o queryOptions, args []string) error {
	if err := checkGroup(o.group); err != nil {
		return err
	}
	format, err := parseFormat(o.format, fmtPretty, fmtTSV, fmtJSON, fmtYAML)
	if err != nil {
		return err
	}
	role, err := roleOrMember(cmd, o.role, o.member)
	if err != nil {
		return err
	}
	switch {
	case o.file != "" && o.command != "":
		return usagef("pass either -c SQL or -f FILE, not both")
	case o.file == "" && o.command == "":
		return usagef("query needs -c SQL or -f FILE")
	case o.watch < 0:
		return usagef("-w must be a positive number of seconds, got %v", o.watch)
	}
	sql := o.command
	if o.file != "" {
		b, err := a.readInput(o.file)
		if err != nil {
			return err
		}
		sql = string(b)
	}
	var password string
	if o.password {
		if password, err = a.password("Password"); err != nil {
			return err
		}
	}
	name, err := a.clusterName(args)
	if err != nil {
		return err
	}
	return a.watchLoop(o.watch, o.watchW, func() error {
		c, err := a.cluster(name)
		if err != nil {
			return err
		}
		var candidates []dcs.Member
		if o.member != "" {
			m, err := findMember(c, name, o.member, "")
			if err != nil {
				return err
			}
			candidates = []dcs.Member{*m}
		} else {
			if role == "" {
				role = roleLeader
			}
			candidates = membersWithRole(c, role)
			if len(candidates) == 0 {
				return fmt.Errorf("cluster %q has no member with role %s (members: %s)", name, role,
					joinNames(memberNames(c.Members)))
			}
		}
		conn, err := a.connect(candidates, o.dbname, o.user, password)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		return a.runSQL(conn, sql, format, o.delimiter)
	})
}

// connect opens a connection to the first candidate that accepts one.
func (a *app) connect(candidates []dcs.Member, dbname, user, password string) (*pgx.Conn, error) {
	var errs []error
	for _, m := range candidates {
		if m.Data.ConnURL == "" {
			errs = append(errs, fmt.Errorf("member %s publishes no conn_url", m.Name))
			continue
		}
		cfg, err := pgx.ParseConfig(m.Data.ConnURL)
		if err != nil {
			errs = append(errs, fmt.Errorf("member %s: conn_url %q: %w", m.Name, m.Data.ConnURL, err))
			continue
		}
		if dbname != "" {
			cfg.Database = dbname
		}
		if user != "" {
			cfg.User = user
		}
		if password != "" {
			cfg.Password = password
		}
		cfg.ConnectTimeout = 5 * time.Second
		cfg.RuntimeParams["application_name"] = "tuskerctl"
		conn, err := pgx.ConnectConfig(a.ctx, cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("connecting to member %s: %w", m.Name, err))
			continue
		}
		return conn, nil
	}
	return nil, errors.Join(errs...)
}

// runSQL runs the SQL with the simple protocol (several statements are allowed) and prints the
// rows of every statement that returns some.
func (a *app) runSQL(conn *pgx.Conn, sql, format, delimiter string) error {
	results, err := conn.PgConn().Exec(a.ctx, sql).ReadAll()
	for _, r := range results {
		if len(r.FieldDescriptions) == 0 {
			continue
		}
		t := &table{delimiter: delimiter}
		for _, fd := range r.FieldDescriptions {
			t.columns = append(t.columns, fd.Name)
		}
		for _, row := range r.Rows {
			cells := make([]any, len(row))
			for i, v := range row {
				if v != nil {
					cells[i] = string(v)
				}
			}
			t.rows = append(t.rows, cells)
		}
		if werr := t.write(a.out, format); werr != nil {
			return werr
		}
	}
	if err != nil {
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
			return fmt.Errorf("%s: %s (SQLSTATE %s)", pe.Severity, pe.Message, pe.Code)
		}
		return fmt.Errorf("running the query: %w", err)
	}
	return nil
}
