package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tusker-ha/tusker/patroni"
)

// Replication slots: what the server has (Slots) and the changes the HA loop decided
// (ApplySlots). Which slots to keep is policy and lives in package ha; this file only reads and
// carries out, and refuses names and values PostgreSQL would not take.

// SlotInfo is one non-temporary row of pg_replication_slots.
type SlotInfo struct {
	Name     string
	Logical  bool
	Database string // logical slots
	Plugin   string // logical slots
	Active   bool
	// RestartLSN and ConfirmedFlushLSN (logical slots) as byte positions; 0 when null.
	RestartLSN, ConfirmedFlushLSN int64
}

// Type is pg_replication_slots.slot_type: "physical" or "logical".
func (s SlotInfo) Type() string { return SlotType(s.Logical) }

// SlotType names a slot's kind as pg_replication_slots and ignore_slots do.
func SlotType(logical bool) string {
	if logical {
		return "logical"
	}
	return "physical"
}

// Position is the slot's position as Patroni publishes it in the status key: confirmed_flush_lsn
// for a logical slot, restart_lsn for a physical one.
func (s SlotInfo) Position() int64 {
	if s.Logical {
		return s.ConfirmedFlushLSN
	}
	return s.RestartLSN
}

// SlotOpKind is what ApplySlots does to one slot.
type SlotOpKind int

const (
	CreateSlot  SlotOpKind = iota // create (physical: reserving WAL at once)
	AdvanceSlot                   // pg_replication_slot_advance to LSN
	DropSlot                      // drop an inactive slot
)

func (k SlotOpKind) String() string {
	return [...]string{"create", "advance", "drop"}[k]
}

// SlotOp is one change to one slot.
type SlotOp struct {
	Kind     SlotOpKind
	Name     string
	Logical  bool   // CreateSlot
	Database string // CreateSlot of a logical slot: the database it decodes
	Plugin   string // CreateSlot of a logical slot
	LSN      int64  // AdvanceSlot
}

func (o SlotOp) String() string {
	switch o.Kind {
	case AdvanceSlot:
		return fmt.Sprintf("advance %s to %s", o.Name, patroni.FormatLSN(o.LSN))
	case CreateSlot:
		if o.Logical {
			return fmt.Sprintf("create logical %s (%s, %s)", o.Name, o.Database, o.Plugin)
		}
	}
	return o.Kind.String() + " " + o.Name
}

var (
	slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	pluginRE   = regexp.MustCompile(`^[A-Za-z0-9_]{1,63}$`)
)

// Slots lists the server's non-temporary replication slots.
func (p *Postgres) Slots(ctx context.Context) ([]SlotInfo, error) {
	var out []SlotInfo
	err := p.withKeptConn(ctx, "listing replication slots", func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT slot_name::text, slot_type = 'logical', COALESCE(database::text, ''),
			COALESCE(plugin::text, ''), active,
			COALESCE(restart_lsn - '0/0'::pg_lsn, 0)::bigint, COALESCE(confirmed_flush_lsn - '0/0'::pg_lsn, 0)::bigint
			FROM pg_catalog.pg_replication_slots WHERE NOT temporary ORDER BY 1`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (SlotInfo, error) {
			var s SlotInfo
			err := r.Scan(&s.Name, &s.Logical, &s.Database, &s.Plugin, &s.Active, &s.RestartLSN, &s.ConfirmedFlushLSN)
			return s, err
		})
		return err
	})
	return out, err
}

// ApplySlots carries out ops in order; one failing op does not stop the others. A slot created
// meanwhile counts as created; a slot that became active is not dropped (PostgreSQL refuses).
func (p *Postgres) ApplySlots(ctx context.Context, ops []SlotOp) error {
	if len(ops) == 0 {
		return nil
	}
	for _, o := range ops {
		if !slotNameRE.MatchString(o.Name) {
			return fmt.Errorf("replication slots: invalid slot name %q", o.Name)
		}
		if o.Kind == CreateSlot && o.Logical && (!pluginRE.MatchString(o.Plugin) || o.Database == "" || len(o.Database) > 63) {
			return fmt.Errorf("replication slots: logical slot %s: invalid plugin %q or database %q", o.Name, o.Plugin, o.Database)
		}
	}
	logger := p.log()
	var errs []error
	err := p.withKeptConn(ctx, "changing replication slots", func(conn *pgx.Conn) error {
		for _, o := range ops {
			if o.Kind == CreateSlot && o.Logical {
				continue // needs a connection to its database: below
			}
			var q string
			args := []any{o.Name}
			switch o.Kind {
			case CreateSlot:
				q = "SELECT pg_catalog.pg_create_physical_replication_slot($1, true)"
			case AdvanceSlot:
				q = "SELECT pg_catalog.pg_replication_slot_advance($1, ('0/0'::pg_lsn + $2::numeric))"
				args = append(args, o.LSN)
			case DropSlot:
				q = "SELECT pg_catalog.pg_drop_replication_slot($1)"
			}
			if err := slotExec(ctx, conn, q, args...); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", o, err))
				continue
			}
			if o.Kind != AdvanceSlot {
				logger.Info("replication slot: "+o.String(), "slot", o.Name)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, o := range ops {
		if o.Kind != CreateSlot || !o.Logical {
			continue
		}
		if err := p.createLogicalSlot(ctx, o); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o, err))
			continue
		}
		logger.Info("replication slot: "+o.String(), "slot", o.Name)
	}
	return errors.Join(errs...)
}

// createLogicalSlot creates a logical slot connected to its database (PostgreSQL binds a logical
// slot to the database of the session that creates it). It waits for the transactions running
// at that moment to end: ctx bounds that wait.
func (p *Postgres) createLogicalSlot(ctx context.Context, o SlotOp) error {
	if !p.Running() {
		return ErrNotRunning
	}
	conn, err := p.connect(ctx, o.Database)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	return slotExec(ctx, conn, "SELECT pg_catalog.pg_create_logical_replication_slot($1, $2)", o.Name, o.Plugin)
}

func slotExec(ctx context.Context, conn *pgx.Conn, q string, args ...any) error {
	_, err := conn.Exec(ctx, q, args...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: created meanwhile
		return nil
	}
	return err
}
