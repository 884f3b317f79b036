package ha

import (
	"context"
	"time"

	"github.com/tusker-ha/tusker/postgres"
)

// PG is what the loop needs of the local PostgreSQL: the seam between the loop and the server.
// *postgres.Postgres implements it against a real server; a test can drive a Node with another
// implementation.
type PG interface {
	// Process
	Running() bool
	Start(ctx context.Context, opts postgres.StartOptions) error
	Stop(ctx context.Context, mode postgres.StopMode) error
	Fence(grace time.Duration)
	Reload(ctx context.Context) error
	Options() postgres.StartOptions
	SetConfig(cfg postgres.Config)
	PendingRestartSettings(ctx context.Context) (map[string]string, error)

	// State
	State(ctx context.Context) (postgres.State, error)
	ControlData(ctx context.Context) (postgres.ControlData, error)
	DataDirState() postgres.DataDirState
	DataDirUnreadable() error
	StandbySignal() bool

	// Roles and replication
	Promote(ctx context.Context) error
	Follow(ctx context.Context, up postgres.Upstream) error
	Checkpoint(ctx context.Context) error
	Slots(ctx context.Context) ([]postgres.SlotInfo, error)
	ApplySlots(ctx context.Context, ops []postgres.SlotOp) error
	CanRewind(ctx context.Context) (bool, string)
	NeedsRewind(ctx context.Context, up postgres.Upstream) (bool, error)
	Rewind(ctx context.Context, up postgres.Upstream) error

	// Creating a data directory
	Initdb(ctx context.Context, args []string) error
	Basebackup(ctx context.Context, up postgres.Upstream) error
	MarkStandby() error
	EndRecovery(ctx context.Context) error
	RemoveDataDir() error
	CreateRoles(ctx context.Context) error
	CreateUsers(ctx context.Context, users []postgres.User) error
	WritePassfile() error
}

var _ PG = (*postgres.Postgres)(nil)
