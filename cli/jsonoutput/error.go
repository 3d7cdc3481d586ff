package jsonoutput

// Error is the document a command prints in JSON mode when it fails before it has a result:
//
//	{"error": {"code": "NOT_VERIFIED", "message": "coordinator localhost:4433 has not been verified yet: …"}}
//
// Its shape is that of the Coordinator API's error answers.
type Error struct {
	// Error says what went wrong.
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong.
type ErrorBody struct {
	// Code is stable, for scripts to branch on: one of the codes below or, when the
	// Coordinator refused the request, the code of its answer (BAD_REQUEST, UNAUTHENTICATED,
	// FORBIDDEN, NOT_FOUND, NOT_READY, MANIFEST_INVALID, …; see api/openapi.json).
	Code string `json:"code"`
	// Message says, for people, what was expected and what was found. Its wording may change.
	Message string `json:"message"`
	// RequestID is the Coordinator's ID of the refused request, found in its log; omitted when
	// the error did not come from the Coordinator.
	RequestID string `json:"request_id,omitempty"`
}

// Codes of [ErrorBody.Code] for failures the CLI finds itself.
const (
	// CodeUsage: the command line is wrong: an unknown command or flag, a missing or extra
	// argument, a flag value that does not parse or flags that exclude each other.
	CodeUsage = "USAGE"
	// CodeNotVerified: the Coordinator has not been verified yet (nothing is pinned for its
	// address), or its verification failed.
	CodeNotVerified = "NOT_VERIFIED"
	// CodePinChanged: the Coordinator's deployment root differs from the pinned one (a new
	// deployment, or an attack); verify again, with --replace-pin if the change is expected.
	CodePinChanged = "PIN_CHANGED"
	// CodeUnreachable: no connection to the Coordinator could be made; nothing was sent.
	CodeUnreachable = "UNREACHABLE"
	// CodeCoordinatorError: the Coordinator answered with an error that has no code (not a
	// Cloister API answer, such as a proxy's).
	CodeCoordinatorError = "COORDINATOR_ERROR"
	// CodeFailed: any other failure, such as a file that cannot be read or an image that does
	// not convert; the message says which.
	CodeFailed = "FAILED"
)
