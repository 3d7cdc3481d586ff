package verify

import "fmt"

// TCBStatus is a TCB level status as Intel spells it in TCB Info and QE Identity.
type TCBStatus string

// The TCB statuses Intel defines, from best to worst.
const (
	UpToDate                          TCBStatus = "UpToDate"
	SWHardeningNeeded                 TCBStatus = "SWHardeningNeeded"
	ConfigurationNeeded               TCBStatus = "ConfigurationNeeded"
	ConfigurationAndSWHardeningNeeded TCBStatus = "ConfigurationAndSWHardeningNeeded"
	OutOfDate                         TCBStatus = "OutOfDate"
	OutOfDateConfigurationNeeded      TCBStatus = "OutOfDateConfigurationNeeded"
	Revoked                           TCBStatus = "Revoked"
)

// TCBStatuses lists every status Intel defines, from best to worst.
var TCBStatuses = []TCBStatus{
	UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded,
	OutOfDate, OutOfDateConfigurationNeeded, Revoked,
}

// DefaultTCBStatuses are the statuses a policy accepts when it names none.
var DefaultTCBStatuses = []TCBStatus{UpToDate, SWHardeningNeeded}

// ParseTCBStatus returns s as a TCBStatus, or an error naming the valid spellings.
func ParseTCBStatus(s string) (TCBStatus, error) {
	for _, st := range TCBStatuses {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown TCB status %q; expected one of %v", s, TCBStatuses)
}
