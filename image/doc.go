// Package image converts unmodified container images into confidential
// images, without any daemon, and inspects and verifies converted images.
//
// # Converting
//
// [Open] reads an image from an OCI layout (oci:DIR[:TAG]), a docker-archive
// file (docker-archive:FILE[:REF]) or a registry (docker://REGISTRY/REPO:TAG);
// [FromImage] wraps any go-containerregistry image. [Convert] then:
//
//   - reads every layer once, each file hashed as it streams by, and stacks
//     the layers as a container runtime does (whiteouts, opaque directories,
//     later layers winning, hard links resolved to their target's content,
//     symbolic links skipped);
//   - encrypts the protected paths (Config.Protect) with package protect
//     for their original paths, and rewrites every layer that holds one of
//     them or an older version of one, so that no blob of the output
//     contains their plaintext; a whiteout in a later layer would not be
//     enough. Each protected file's mode and numeric owner, and those of the
//     directories above it, go into the enclave manifest; named pipes and
//     devices in a protected directory are refused;
//   - leaves the directories the application writes unmeasured (the image
//     configuration's VOLUME paths and Config.Writable, as directory-prefix
//     excludes), refuses protected paths at, above or below them and the
//     encrypted volumes (protected content is read-only), and warns about
//     measured files in directories the application probably writes;
//   - records each encrypted volume (Config.EncryptedVolumes) and moves the
//     content the image has there, if any, to its seed path below
//     /cloister/seed, leaving the volume directory empty;
//   - writes and signs the enclave manifest (package enclave): the trusted
//     command line, environment, working directory and user, every trusted
//     file's SHA-256 and size, the protected files, the excluded patterns,
//     the encrypted volumes and the accepted Coordinator identity;
//   - writes a Gramine manifest for real SGX hardware;
//   - adds one layer holding /cloister/launch (the launcher),
//     /cloister/enclave.json, /cloister/gramine.manifest, the encrypted
//     files under /cloister/protected and, at each protected path, a
//     symbolic link to its plaintext under the launcher's memory-backed
//     directory (so the launcher writes nothing in the image and a
//     container restarts cleanly), the seeds, each encrypted volume's
//     directory (with an opaque whiteout when seeded) and every directory
//     above these entries with the image's owner, mode and time; and makes
//     the launcher the entrypoint.
//
// Unchanged layers keep their blobs byte for byte. [Write] stores the result
// in any of the three transports. The output is reproducible: the same input,
// signing key and file key give the same digest.
//
// # Resources
//
// Memory does not grow with the size of the image's files, only with its
// number of entries (at the peak about 700 bytes each plus five times its
// path and link target, bounded by [Limits]): layers and files are
// streamed, never held in memory, and rewritten layers go to temporary files.
// Layers are read in parallel, Config.Workers at a time.
//
// # Hostile input
//
// Layer tars are read defensively ([Limits], [ErrUnsafe], [ErrLimit]): entry
// names that are absolute, hold "..", are not UTF-8, exceed 4096 bytes or
// have an element over 255 bytes;
// entries under a non-directory of a lower layer (a symbolic link, say);
// hard links to anything but an existing regular file; device nodes; data on
// entries that carry none; unknown entry types; too many entries, layers or
// bytes. Each fails the conversion with an error naming the layer and entry.
// A protected path reached through symbolic links is resolved as the kernel
// would inside the container (".." never leaves the root), and protecting a
// file whose content would remain elsewhere in the image (through a hard
// link, a symbolic link in a protected directory, an identical copy, or in
// the image configuration or enclave manifest) fails with [ErrPlaintext].
//
// # Inspecting
//
// [Inspect] reads a converted image's enclave manifest and launcher from its
// top layers and checks the signature; [Verify] also re-hashes every file
// from the layers and reports every difference from the manifest.
package image
