package core

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// maxEchoed bounds how much of a caller's string a message, log line or reply repeats. Workload
// names, instance IDs and certificate fields come from anyone who can reach the APIs; a 250 KiB
// name must not become 250 KiB of log per request.
const maxEchoed = 80

// boundString shortens s to maxEchoed bytes (on a rune boundary), saying how long it was.
func boundString(s string) string {
	head, more := cutEchoed(s)
	return head + more
}

// quoteBounded quotes s for a message, shortened like boundString.
func quoteBounded(s string) string {
	head, more := cutEchoed(s)
	return strconv.Quote(head) + more
}

func cutEchoed(s string) (head, more string) {
	if len(s) <= maxEchoed {
		return s, ""
	}
	cut := maxEchoed
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], fmt.Sprintf("… (%d bytes)", len(s))
}
