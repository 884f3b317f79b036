package ha

// Job is a long action that runs in its own goroutine while the loop goes on (renewing the lease,
// publishing): at most one at a time. View.Job says which one is in progress (NoJob for none).
type Job int

const (
	NoJob Job = iota
	JobBootstrap
	JobClone
	JobReclone
	JobStart
	JobFollow
	JobPromote
	JobDemote
	JobStopReplica
	JobRewindCheck
	JobRewind
	JobSwitchover
	JobRestart
	JobReinitialize
	JobDemoteCluster
)

var jobNames = [...]string{
	NoJob: "", JobBootstrap: "bootstrap", JobClone: "clone", JobReclone: "reclone", JobStart: "start",
	JobFollow: "follow", JobPromote: "promote", JobDemote: "demote", JobStopReplica: "stop replica",
	JobRewindCheck: "rewind check", JobRewind: "rewind", JobSwitchover: "switchover", JobRestart: "restart",
	JobReinitialize: "reinitialize", JobDemoteCluster: "demote cluster",
}

// String is the job's name in logs and messages ("" for NoJob).
func (j Job) String() string {
	if j < 0 || int(j) >= len(jobNames) {
		return "job?"
	}
	return jobNames[j]
}
