// Package launcher is cloister-launch, the entrypoint of every confidential container. It
// proves what it runs, activates with the Coordinator, and only then starts the original
// application:
//
//  1. read and check the signed enclave manifest (/cloister/enclave.json);
//  2. in simulation, verify every trusted file and compute the measurement: the launcher's own
//     hash is the enclave manifest's record of the launcher once its size and Go build ID show
//     it is that binary, and a launcher of another size or build ID is refused; where the
//     record has no build ID, it hashes itself meanwhile and is refused, before it activates,
//     unless the hash is the recorded one; without a record it hashes itself meanwhile and the
//     first quote waits for it. Inside Gramine, the enclave loader has done both;
//  3. open its memory-backed storage (/dev/shm/cloister-delivered and, with protected files,
//     /dev/shm/cloister-protected; inside Gramine, only the in-enclave tmpfs mounts the signed
//     enclave manifest records), empty it of an earlier start's files, and check it has room
//     for them, so that a launch bound to fail spends no activation;
//  4. connect to the Coordinator (from the start, meanwhile: the connection and the Coordinator's
//     shared quote of the current epoch are fetched while steps 1-3 run) and verify its quote
//     before sending anything (mutual attestation: a workload never takes its secrets from an
//     impostor; the quote must bind the key this connection's handshake proved and be a few
//     minutes old at most); on that connection read the (public) deployment manifest and check,
//     as its own uid, every place it will write (the delivered files or their links, encrypted
//     volumes), refusing with the path, the uid and the fix before any activation
//     (preflight.go); then activate on the same connection with a quote over its fresh key and
//     the connection (if that connection closes, again on a new one);
//  5. write the delivered files into memory only (0600; each path outside a tmpfs becomes a
//     link to its copy; never through a symbolic link, which is refused), unlock protected
//     files, prepare the encrypted volumes (seeded once from the image), build the environment
//     (host variables only where the enclave manifest allows them; HOME and supplementary
//     groups as runc gives them) and argv;
//  6. start the application: by default as the launcher's child, the launcher staying as the
//     container's init ([Supervise]: signals forwarded, zombies reaped, the application's exit
//     status, the workload certificate renewed before it expires); with the workload's exec,
//     by exec ([Exec]). Either way, a non-root application first gets the root-owned pipes of
//     its standard streams, so that it can reopen /dev/stdout.
//
// Every failure stops before step 6 with a non-zero exit and a reason: an application that
// was not activated never starts. After step 6 nothing stops or restarts the application: a
// failed renewal is retried, and logged loudly once the certificate has expired.
//
// The package stays small and static (CGO_ENABLED=0): no CLI framework, metrics or image code.
package launcher
