package manifest

import (
	"strings"
	"testing"
)

// TestValidateRules changes one thing in a valid manifest per case and checks the one
// problem reported: its exact path and part of its message.
func TestValidateRules(t *testing.T) {
	alice, bob := testCert(t, "alice"), testCert(t, "bob")
	type mutation = func(d obj)
	setSecret := func(name string, s obj) mutation { return func(d obj) { at(d, "secrets")[name] = s } }
	setWorkload := func(key string, v any) mutation { return func(d obj) { at(d, "workloads", "server")[key] = v } }
	setPackage := func(key string, v any) mutation { return func(d obj) { at(d, "packages", "web")[key] = v } }
	setRole := func(r obj) mutation { return func(d obj) { at(d, "roles")["ops"] = r } }
	for _, tc := range []struct {
		name   string
		mutate mutation
		path   string
		msg    string
		count  int // problems expected; 0 means 1
	}{
		// settings
		{"trust domain characters", func(d obj) { at(d, "settings")["trust_domain"] = "Corp.Example" }, "$.settings.trust_domain", `expected a SPIFFE trust domain of lowercase letters, digits, '.', '-' and '_' (such as "example.org"), found "Corp.Example"`, 0},
		{"trust domain empty", func(d obj) { at(d, "settings")["trust_domain"] = "" }, "$.settings.trust_domain", `found ""`, 0},
		{"trust domain too long", func(d obj) { at(d, "settings")["trust_domain"] = strings.Repeat("a", 256) }, "$.settings.trust_domain", "at most 255 bytes, found 256 bytes", 0},
		{"validity too short", func(d obj) { at(d, "settings")["workload_certificate_validity"] = "4s" }, "$.settings.workload_certificate_validity", "expected a duration from 5s to 8760h, found 4s", 0},
		{"validity too long", func(d obj) { at(d, "settings")["workload_certificate_validity"] = "8761h" }, "$.settings.workload_certificate_validity", "found 8761h0m0s", 0},
		{"validity zero", func(d obj) { at(d, "settings")["workload_certificate_validity"] = "0s" }, "$.settings.workload_certificate_validity", "found 0s", 0},
		// packages
		{"package name", func(d obj) { at(d, "packages")["-web"] = obj{"mrenclave": hexA} }, `$.packages["-web"]`, `invalid package name "-web": expected 1 to 64 ASCII letters`, 0},
		{"package without identity", func(d obj) { at(d, "packages")["x"] = obj{"debug": true} }, "$.packages.x", "expected an enclave identity, mrenclave or mrsigner, found neither", 0},
		{"package with both identities", setPackage("mrenclave", hexB), "$.packages.web", "expected either mrenclave or mrsigner, found both", 0},
		{"mrenclave uppercase", func(d obj) { at(d, "packages", "db")["mrenclave"] = strings.ToUpper(hexB) }, "$.packages.db.mrenclave", "expected 64 lowercase hex digits, found", 0},
		{"mrenclave short", func(d obj) { at(d, "packages", "db")["mrenclave"] = hexB[:62] }, "$.packages.db.mrenclave", "(62 characters)", 0},
		{"mrenclave empty", func(d obj) { at(d, "packages", "db")["mrenclave"] = "" }, "$.packages.db.mrenclave", `found "" (0 characters)`, 0},
		{"mrsigner all zeros", setPackage("mrsigner", strings.Repeat("0", 64)), "$.packages.web.mrsigner", "found all zeros", 0},
		{"isvprodid with mrenclave", func(d obj) { at(d, "packages", "db")["isvprodid"] = 1 }, "$.packages.db.isvprodid", "expected isvprodid only with mrsigner, found it with mrenclave", 0},
		{"min_isvsvn with mrenclave", func(d obj) { at(d, "packages", "db")["min_isvsvn"] = 0 }, "$.packages.db.min_isvsvn", "expected min_isvsvn only with mrsigner", 0},
		{"mrsigner without isvprodid", func(d obj) { delete(at(d, "packages", "web"), "isvprodid") }, "$.packages.web.isvprodid", "expected the product ID (0 to 65535) that goes with mrsigner, found none", 0},
		{"mrsigner without min_isvsvn", func(d obj) { delete(at(d, "packages", "web"), "min_isvsvn") }, "$.packages.web.min_isvsvn", "expected the lowest accepted security version", 0},
		{"tcb statuses empty", setPackage("tcb_statuses", arr{}), "$.packages.web.tcb_statuses", "expected at least one TCB status, found an empty list", 0},
		{"tcb status unknown", setPackage("tcb_statuses", arr{"UpToDate", "uptodate"}), "$.packages.web.tcb_statuses[1]", `unknown TCB status "uptodate"; expected one of [UpToDate`, 0},
		{"tcb status twice", setPackage("tcb_statuses", arr{"UpToDate", "UpToDate"}), "$.packages.web.tcb_statuses[1]", `expected each TCB status once, found "UpToDate" again`, 0},
		{"advisory ID", setPackage("advisories", arr{"INTEL-SA-615"}), "$.packages.web.advisories[0]", `expected an Intel advisory ID such as "INTEL-SA-00615", found "INTEL-SA-615"`, 0},
		{"advisory twice", setPackage("advisories", arr{"INTEL-SA-00615", "INTEL-SA-00615"}), "$.packages.web.advisories[1]", "found \"INTEL-SA-00615\" again", 0},
		// workloads
		{"workload name", func(d obj) { at(d, "workloads")["Server"] = obj{"package": "web"} }, "$.workloads.Server", `invalid workload name "Server": expected 1 to 63 lowercase letters`, 0},
		{"workload name underscore", func(d obj) { at(d, "workloads")["my_app"] = obj{"package": "web"} }, "$.workloads.my_app", "invalid workload name", 0},
		{"workload name too long", func(d obj) { at(d, "workloads")[strings.Repeat("a", 64)] = obj{"package": "web"} }, "$.workloads." + strings.Repeat("a", 64), "invalid workload name", 0},
		{"workload without package", func(d obj) { delete(at(d, "workloads", "server"), "package") }, "$.workloads.server.package", "expected the name of a package, found none; defined packages: db, web", 0},
		{"unknown package", setWorkload("package", "webx"), "$.workloads.server.package", `unknown package "webx"; defined packages: db, web`, 0},
		{"max activations", setWorkload("max_activations", 1<<31), "$.workloads.server.max_activations", "expected 0 (unlimited) to 2147483647, found 2147483648", 0},
		{"tls dns invalid", setWorkload("tls", obj{"dns": arr{"server..local"}}), "$.workloads.server.tls.dns[0]", `expected a lowercase DNS name (labels of 1 to 63 letters, digits or '-', not starting or ending with '-'), found "server..local"`, 0},
		{"tls dns uppercase", setWorkload("tls", obj{"dns": arr{"Server"}}), "$.workloads.server.tls.dns[0]", "expected a lowercase DNS name", 0},
		{"tls dns inner wildcard", setWorkload("tls", obj{"dns": arr{"a.*.example"}}), "$.workloads.server.tls.dns[0]", "expected a lowercase DNS name", 0},
		{"tls dns is IP", setWorkload("tls", obj{"dns": arr{"10.0.0.1"}}), "$.workloads.server.tls.dns[0]", `found IP address "10.0.0.1"; list it under "ip"`, 0},
		{"tls dns too long", setWorkload("tls", obj{"dns": arr{strings.Repeat("a.", 127) + "a"}}), "$.workloads.server.tls.dns[0]", "1 to 253 bytes, found 255 bytes", 0},
		{"tls dns twice", setWorkload("tls", obj{"dns": arr{"server", "server"}}), "$.workloads.server.tls.dns[1]", `expected each DNS name once, found "server" again`, 0},
		{"file key undefined", setWorkload("file_keys", arr{"nokey"}), "$.workloads.server.file_keys[0]", `expected the name of a defined secret, found "nokey"`, 0},
		{"file key wrong size", func(d obj) {
			at(d, "secrets")["k128"] = obj{"type": "symmetric-key", "size": 128}
			at(d, "workloads", "server")["file_keys"] = arr{"k128"}
		}, "$.workloads.server.file_keys[0]", `secret "k128" has 128 bits; a protected-file key has 256`, 0},
		{"file key certificate", setWorkload("file_keys", arr{"tls"}), "$.workloads.server.file_keys[0]", `secret "tls" is of type certificate`, 0},
		{"file key per instance", func(d obj) {
			at(d, "secrets")["pi"] = obj{"type": "symmetric-key", "size": 256, "per_instance": true}
			at(d, "workloads", "server")["file_keys"] = arr{"pi"}
		}, "$.workloads.server.file_keys[0]", `secret "pi" is per instance`, 0},
		{"CA secret under the deployment CA", setSecret("ca", obj{"type": "certificate", "is_ca": true}), "$.secrets.ca.is_ca", "expected self_signed with is_ca", 0},
		{"certificate secret with a workload's name", func(d obj) {
			at(d, "workloads", "server")["tls"] = obj{"dns": arr{"server.local"}, "ip": arr{"10.0.0.7"}}
			at(d, "secrets")["impostor"] = obj{"type": "certificate", "dns": arr{"server.local"}, "ip": arr{"10.0.0.7"}}
		}, "$.secrets.impostor.dns[0]", `"server.local" matches the DNS name "server.local" of workload "server"; a certificate secret must not carry a workload's identity`, 2},
		{"file key twice", setWorkload("file_keys", arr{"token", "token"}), "$.workloads.server.file_keys[1]", `expected each secret name once, found "token" again`, 0},
		{"tls dns of two workloads", func(d obj) {
			at(d, "workloads", "server")["tls"] = obj{"dns": arr{"api.example"}}
			at(d, "workloads")["worker"] = obj{"package": "web", "tls": obj{"dns": arr{"api.example"}}}
		}, "$.workloads.worker.tls.dns[0]", `expected a DNS name no other workload has, found "api.example", a name of workload "server" too`, 0},
		{"tls ip invalid", setWorkload("tls", obj{"ip": arr{"10.0.0"}}), "$.workloads.server.tls.ip[0]", `expected an IPv4 or IPv6 address, found "10.0.0"`, 0},
		{"tls ip zone", setWorkload("tls", obj{"ip": arr{"fe80::1%eth0"}}), "$.workloads.server.tls.ip[0]", "without zone", 0},
		{"tls ip unspecified", setWorkload("tls", obj{"ip": arr{"::"}}), "$.workloads.server.tls.ip[0]", "found the unspecified address", 0},
		{"tls ip twice as v4-mapped", setWorkload("tls", obj{"ip": arr{"10.0.0.1", "::ffff:10.0.0.1"}}), "$.workloads.server.tls.ip[1]", "expected each IP address once, found 10.0.0.1 again", 0},
		{"tls ip of two workloads", func(d obj) {
			at(d, "workloads", "server")["tls"] = obj{"ip": arr{"127.0.0.1"}}
			at(d, "workloads")["worker"] = obj{"package": "web", "tls": obj{"ip": arr{"127.0.0.1"}}}
		}, "$.workloads.worker.tls.ip[0]", `an address of workload "server" too`, 0},
		{"env name", setWorkload("env", obj{"1X": "a"}), `$.workloads.server.env["1X"]`, `expected an environment variable name of at most 256 ASCII letters, digits or '_', not starting with a digit, found "1X"`, 0},
		{"env name with =", setWorkload("env", obj{"A=B": "a"}), `$.workloads.server.env["A=B"]`, "expected an environment variable name", 0},
		{"env name reserved", setWorkload("env", obj{"CLOISTER_WORKLOAD": "a"}), "$.workloads.server.env.CLOISTER_WORKLOAD", "is reserved", 0},
		{"env literal NUL", setWorkload("env", obj{"A": "x\x00y"}), "$.workloads.server.env.A", "rendered environment value contains a NUL byte", 0},
		{"argv literal NUL", setWorkload("argv", arr{"/bin/app", "\x00"}), "$.workloads.server.argv[1]", "rendered argv value contains a NUL byte", 0},
		{"env plain value NUL", func(d obj) {
			at(d, "secrets")["greeting"] = obj{"type": "plain", "value": "a\x00b"}
			at(d, "workloads", "server")["env"] = obj{"A": "{{.Secrets.greeting.Raw}}"}
		}, "$.workloads.server.env.A", "contains a NUL byte", 0},
		{"file relative", setWorkload("files", obj{"etc/x": ""}), `$.workloads.server.files["etc/x"]`, `expected an absolute, clean file path such as "/etc/app/config.json", found "etc/x"`, 0},
		{"file root", setWorkload("files", obj{"/": ""}), `$.workloads.server.files["/"]`, "expected an absolute, clean file path", 0},
		{"file trailing slash", setWorkload("files", obj{"/etc/x/": ""}), `$.workloads.server.files["/etc/x/"]`, "clean file path", 0},
		{"file dot dot", setWorkload("files", obj{"/etc/../x": ""}), `$.workloads.server.files["/etc/../x"]`, "clean file path", 0},
		{"file NUL", setWorkload("files", obj{"/etc/x\x00": ""}), `$.workloads.server.files["/etc/x\x00"]`, "found a NUL byte in it", 0},
		{"file too long", setWorkload("files", obj{"/" + strings.Repeat("a", 4096): ""}), `$.workloads.server.files["/` + strings.Repeat("a", maxQuoted-1) + `"… (4097 bytes)]`, "expected a path of at most 4096 bytes, found 4097 bytes", 0},
		{"file reserved", setWorkload("files", obj{"/cloister/launcher": ""}), `$.workloads.server.files["/cloister/launcher"]`, "is reserved", 0},
		{"file reserved dir", setWorkload("files", obj{"/cloister": ""}), `$.workloads.server.files["/cloister"]`, "is reserved", 0},
		{"file under file", setWorkload("files", obj{"/etc/app": "", "/etc/app-x": "", "/etc/app/x/y": ""}), `$.workloads.server.files["/etc/app/x/y"]`, `found one under "/etc/app", which is also a file`, 0},
		{"file too large", setWorkload("files", obj{"/big": strings.Repeat("x", MaxRenderedValue+1)}), `$.workloads.server.files["/big"]`, "rendered file value exceeds 1048576 bytes", 0},
		// secrets
		{"secret name", setSecret("api-token", obj{"type": "plain", "value": "x"}), `$.secrets["api-token"]`, `invalid secret name "api-token": expected 1 to 64 ASCII letters, digits or '_', not starting with a digit`, 0},
		{"secret name digit", setSecret("1key", obj{"type": "plain", "value": "x"}), `$.secrets["1key"]`, "invalid secret name", 0},
		{"secret type unknown", setSecret("k", obj{"type": "password"}), "$.secrets.k.type", `expected a secret type, one of [symmetric-key certificate plain user-defined], found "password"`, 0},
		{"secret type missing", setSecret("k", obj{"size": 128}), "$.secrets.k.type", `found ""`, 0},
		{"size on certificate", setSecret("k", obj{"type": "certificate", "size": 256}), "$.secrets.k.size", "expected no size for a certificate secret, found one; size applies to [symmetric-key] secrets", 0},
		{"size zero on certificate", setSecret("k", obj{"type": "certificate", "size": 0}), "$.secrets.k.size", "expected no size for a certificate secret", 0},
		{"value on user-defined", setSecret("k", obj{"type": "user-defined", "value": "x"}), "$.secrets.k.value", "expected no value for a user-defined secret", 0},
		{"max_size on plain", setSecret("k", obj{"type": "plain", "value": "x", "max_size": 10}), "$.secrets.k.max_size", "applies to [user-defined] secrets", 0},
		{"dns on symmetric key", setSecret("k", obj{"type": "symmetric-key", "size": 128, "dns": arr{}}), "$.secrets.k.dns", "expected no dns for a symmetric-key secret", 0},
		{"self_signed false on symmetric key", setSecret("k", obj{"type": "symmetric-key", "size": 128, "self_signed": false}), "$.secrets.k.self_signed", "expected no self_signed", 0},
		{"validity on plain", setSecret("k", obj{"type": "plain", "value": "x", "validity": "1h"}), "$.secrets.k.validity", "expected no validity for a plain secret", 0},
		{"per_instance on user-defined", setSecret("k", obj{"type": "user-defined", "per_instance": true}), "$.secrets.k.per_instance", "per_instance applies to [symmetric-key certificate] secrets", 0},
		{"size missing", setSecret("k", obj{"type": "symmetric-key"}), "$.secrets.k.size", "expected the key size in bits (a multiple of 8 from 128 to 4096), found none", 0},
		{"size zero", setSecret("k", obj{"type": "symmetric-key", "size": 0}), "$.secrets.k.size", "found 0", 0},
		{"size too small", setSecret("k", obj{"type": "symmetric-key", "size": 120}), "$.secrets.k.size", "found 120", 0},
		{"size too large", setSecret("k", obj{"type": "symmetric-key", "size": 4104}), "$.secrets.k.size", "found 4104", 0},
		{"size not bytes", setSecret("k", obj{"type": "symmetric-key", "size": 129}), "$.secrets.k.size", "multiple of 8", 0},
		{"algorithm", setSecret("k", obj{"type": "certificate", "algorithm": "rsa-1024"}), "$.secrets.k.algorithm", `expected one of [ecdsa-p256 ecdsa-p384 rsa-2048 rsa-3072 rsa-4096 ed25519], found "rsa-1024"`, 0},
		{"algorithm empty", setSecret("k", obj{"type": "certificate", "algorithm": ""}), "$.secrets.k.algorithm", `found ""`, 0},
		{"certificate validity", setSecret("k", obj{"type": "certificate", "validity": "87601h"}), "$.secrets.k.validity", "expected a duration from 1m to 87600h, found 87601h0m0s", 0},
		{"common name long", setSecret("k", obj{"type": "certificate", "common_name": strings.Repeat("é", 65)}), "$.secrets.k.common_name", "expected a common name of 1 to 64 characters, found 65", 0},
		{"common name empty", setSecret("k", obj{"type": "certificate", "common_name": ""}), "$.secrets.k.common_name", "found 0", 0},
		{"certificate dns", setSecret("k", obj{"type": "certificate", "dns": arr{"ok.example", "not ok"}}), "$.secrets.k.dns[1]", "expected a lowercase DNS name", 0},
		{"certificate ip twice", setSecret("k", obj{"type": "certificate", "ip": arr{"::1", "0:0::1"}}), "$.secrets.k.ip[1]", "found ::1 again", 0},
		{"plain empty", setSecret("k", obj{"type": "plain", "value": ""}), "$.secrets.k.value", "expected a non-empty value for a plain secret, found none", 0},
		{"max_size zero", setSecret("k", obj{"type": "user-defined", "max_size": 0}), "$.secrets.k.max_size", "expected a size in bytes from 1 to 1048576, found 0", 0},
		{"max_size too large", setSecret("k", obj{"type": "user-defined", "max_size": 1<<20 + 1}), "$.secrets.k.max_size", "found 1048577", 0},
		// users
		{"user name", func(d obj) { at(d, "users")["al ice"] = obj{"certificate": bob} }, `$.users["al ice"]`, "invalid user name", 0},
		{"user certificate missing", func(d obj) { delete(at(d, "users", "alice"), "certificate") }, "$.users.alice.certificate", "expected the user's PEM certificate, found none", 0},
		{"user certificate not PEM", func(d obj) { at(d, "users", "alice")["certificate"] = "MIIBjDCCATKgAwIBAgIU" }, "$.users.alice.certificate", `expected a PEM "CERTIFICATE" block, found no PEM data`, 0},
		{"user certificate is a key", func(d obj) {
			at(d, "users", "alice")["certificate"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
		}, "$.users.alice.certificate", `found a "PRIVATE KEY" block`, 0},
		{"user two certificates", func(d obj) { at(d, "users", "alice")["certificate"] = alice + bob }, "$.users.alice.certificate", "expected one PEM certificate, found more data after it", 0},
		{"user certificate garbage", func(d obj) {
			at(d, "users", "alice")["certificate"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		}, "$.users.alice.certificate", "expected an X.509 certificate, found one that does not parse", 0},
		{"user certificate shared", func(d obj) { at(d, "users")["mallory"] = obj{"certificate": alice} }, "$.users.mallory.certificate", `expected a certificate of this user's own, found the certificate of user "alice"`, 0},
		{"user unknown role", func(d obj) { at(d, "users", "alice")["roles"] = arr{"ops", "admin"} }, "$.users.alice.roles[1]", `unknown role "admin"; defined roles: ops`, 0},
		{"user role twice", func(d obj) { at(d, "users", "alice")["roles"] = arr{"ops", "ops"} }, "$.users.alice.roles[1]", `expected each role once, found "ops" again`, 0},
		// roles
		{"role name", func(d obj) { at(d, "roles")["a/b"] = obj{"resource": "manifest", "actions": arr{"update"}} }, `$.roles["a/b"]`, "invalid role name", 0},
		{"role resource", setRole(obj{"resource": "users", "actions": arr{"read"}}), "$.roles.ops.resource", `expected "secrets", "manifest", "packages" or "audit", found "users"`, 0},
		{"role without actions", setRole(obj{"resource": "secrets", "names": arr{"upload"}}), "$.roles.ops.actions", "expected at least one action, found none", 0},
		{"secrets role without names", setRole(obj{"resource": "secrets", "actions": arr{"read"}}), "$.roles.ops.names", "expected the names of the secrets the role covers, found none", 0},
		{"secrets role unknown secret", setRole(obj{"resource": "secrets", "names": arr{"upload", "uplaod"}, "actions": arr{"read"}}), "$.roles.ops.names[1]", `unknown secret "uplaod"; defined secrets: tls, token, upload`, 0},
		{"secrets role name twice", setRole(obj{"resource": "secrets", "names": arr{"upload", "upload"}, "actions": arr{"read"}}), "$.roles.ops.names[1]", "expected each secret once", 0},
		{"secrets role update", setRole(obj{"resource": "secrets", "names": arr{"upload"}, "actions": arr{"update"}}), "$.roles.ops.actions[0]", `expected action for secrets [read write], found "update"`, 0},
		{"secrets role action twice", setRole(obj{"resource": "secrets", "names": arr{"upload"}, "actions": arr{"read", "read"}}), "$.roles.ops.actions[1]", "expected each action once", 0},
		{"write generated secrets", setRole(obj{"resource": "secrets", "names": arr{"upload", "token", "tls"}, "actions": arr{"read", "write"}}), "$.roles.ops.actions[1]", `expected only user-defined secrets with action "write", found token (symmetric-key), tls (certificate)`, 0},
		{"audit role with names", setRole(obj{"resource": "audit", "names": arr{"x"}, "actions": arr{"read"}}), "$.roles.ops.names", "expected no names for an audit role", 0},
		{"audit role update", setRole(obj{"resource": "audit", "actions": arr{"update"}}), "$.roles.ops.actions[0]", `expected action for the audit log [read], found "update"`, 0},
		{"manifest role with names", setRole(obj{"resource": "manifest", "names": arr{}, "actions": arr{"update"}}), "$.roles.ops.names", "expected no names for a manifest role", 0},
		{"manifest role read", setRole(obj{"resource": "manifest", "actions": arr{"read"}}), "$.roles.ops.actions[0]", `expected action for the manifest [update], found "read"`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := baseDoc(t)
			tc.mutate(d)
			_, err := Parse(marshal(t, d))
			wantFieldError(t, err, tc.path, tc.msg, tc.count)
		})
	}
}

func TestValidateAcceptsEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(d obj)
	}{
		{"wildcard DNS", func(d obj) { at(d, "workloads", "server")["tls"] = obj{"dns": arr{"*.svc.example", "server"}} }},
		{"longest names", func(d obj) {
			at(d, "workloads")[strings.Repeat("a", 63)] = obj{"package": "web"}
			at(d, "secrets")[strings.Repeat("S", 64)] = obj{"type": "plain", "value": "x"}
			at(d, "packages")[strings.Repeat("p", 64)] = obj{"mrenclave": hexA}
		}},
		{"isvprodid and svn zero", func(d obj) { at(d, "packages")["web"] = obj{"mrsigner": hexA, "isvprodid": 0, "min_isvsvn": 0} }},
		{"explicit defaults", func(d obj) {
			d["settings"] = obj{"trust_domain": DefaultTrustDomain, "workload_certificate_validity": "24h"}
			at(d, "workloads", "server")["max_activations"] = 0
			at(d, "secrets")["tls"] = obj{"type": "certificate", "algorithm": "ecdsa-p256", "validity": "8760h", "self_signed": false, "is_ca": false, "per_instance": false}
		}},
		{"validity bounds", func(d obj) {
			d["settings"] = obj{"workload_certificate_validity": "1m"}
			at(d, "secrets")["tls"] = obj{"type": "certificate", "validity": "87600h"}
		}},
		{"size bounds", func(d obj) {
			at(d, "secrets")["small"] = obj{"type": "symmetric-key", "size": 128}
			at(d, "secrets")["large"] = obj{"type": "symmetric-key", "size": 4096}
		}},
		{"same DNS name as a self-signed certificate secret", func(d obj) {
			// A self-signed certificate chains to nothing a workload trusts.
			at(d, "workloads", "server")["tls"] = obj{"dns": arr{"api"}}
			at(d, "secrets")["tls"] = obj{"type": "certificate", "dns": arr{"api"}, "self_signed": true}
		}},
		{"self-signed CA secret", func(d obj) {
			at(d, "secrets")["ca"] = obj{"type": "certificate", "is_ca": true, "self_signed": true}
		}},
		{"raw plain and user-defined values in env", func(d obj) {
			at(d, "secrets")["greeting"] = obj{"type": "plain", "value": "héllo"}
			at(d, "workloads", "server")["env"] = obj{"G": "{{.Secrets.greeting.Raw}}", "U": "{{.Secrets.upload.Raw}}"}
		}},
		{"empty values", func(d obj) {
			at(d, "workloads", "server")["env"] = obj{"EMPTY": ""}
			at(d, "workloads", "server")["files"] = obj{"/empty": ""}
			at(d, "workloads", "server")["argv"] = arr{""}
		}},
		{"manifest and secrets roles", func(d obj) {
			at(d, "roles")["admin"] = obj{"resource": "manifest", "actions": arr{"update"}}
			at(d, "roles")["readers"] = obj{"resource": "secrets", "names": arr{"token", "tls"}, "actions": arr{"read"}}
			at(d, "users", "alice")["roles"] = arr{"ops", "admin", "readers"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := baseDoc(t)
			tc.mutate(d)
			if _, err := Parse(marshal(t, d)); err != nil {
				t.Errorf("Parse: %v", err)
			}
		})
	}
}

// TestValidateReportsEveryProblem checks that problems in every section come back at
// once, in a stable order.
func TestValidateReportsEveryProblem(t *testing.T) {
	d := baseDoc(t)
	at(d, "settings")["trust_domain"] = "UPPER"
	at(d, "packages", "web")["tcb_statuses"] = arr{"Bogus"}
	at(d, "workloads", "server")["package"] = "nope"
	at(d, "workloads", "server")["env"] = obj{"TOKEN": "{{.Secrets.tokn.Hex}}"}
	at(d, "secrets", "token")["size"] = 7
	at(d, "users", "alice")["roles"] = arr{"nobody"}
	at(d, "roles", "ops")["actions"] = arr{"delete"}
	b := marshal(t, d)
	_, err := Parse(b)
	var paths []string
	for _, fe := range fieldErrors(t, err) {
		paths = append(paths, fe.Path)
	}
	want := []string{
		"$.settings.trust_domain",
		"$.packages.web.tcb_statuses[0]",
		"$.secrets.token.size",
		"$.workloads.server.package",
		"$.workloads.server.env.TOKEN",
		"$.roles.ops.actions[0]",
		"$.users.alice.roles[0]",
	}
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("problem paths:\n%s\nwant:\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
	}
	_, again := Parse(b)
	if err.Error() != again.Error() {
		t.Errorf("Parse is not deterministic:\n%v\n---\n%v", err, again)
	}
}

func TestValidateBuiltManifest(t *testing.T) {
	m := &Manifest{
		Packages:  map[string]Package{"web": {MREnclave: hexA}},
		Workloads: map[string]Workload{"server": {Package: "web", Env: map[string]string{"K": "{{.Secrets.k.Hex}}"}}},
		Secrets:   map[string]Secret{"k": {Type: SymmetricKey, Size: 128}, "c": {Type: Certificate}},
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate of a built manifest with zero values for defaults: %v", err)
	}
	m.Secrets["k"] = Secret{Type: SymmetricKey, Size: 128, Algorithm: ECDSAP256}
	wantFieldError(t, m.Validate(), "$.secrets.k.algorithm", "expected no algorithm for a symmetric-key secret", 0)
	if m.Bytes() != nil || m.Digest() != [32]byte{} || m.SecretsUsedBy("server") != nil {
		t.Errorf("a Manifest not made by Parse has bytes, a digest or compiled templates")
	}
	if _, err := m.Render("server", RenderInput{}); err == nil {
		t.Errorf("Render of a Manifest not made by Parse succeeded")
	}
}
