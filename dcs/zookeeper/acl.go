package zookeeper

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"

	"github.com/go-zookeeper/zk"
)

var permNames = map[string]int32{
	"READ": zk.PermRead, "WRITE": zk.PermWrite, "CREATE": zk.PermCreate,
	"DELETE": zk.PermDelete, "ADMIN": zk.PermAdmin, "ALL": zk.PermAll,
}

// schemes a set_acls principal may name explicitly as "scheme:id".
var aclSchemes = map[string]bool{"world": true, "auth": true, "digest": true, "ip": true, "sasl": true, "x509": true}

// ParseACLs turns set_acls (principal -> permissions) into the ACL every znode is created with.
// As in Patroni, a principal is an x509 subject (the client certificate's DN, e.g.
// "CN=patroni,O=acme"), and permissions are READ, WRITE, CREATE, DELETE, ADMIN or ALL in any case.
// Beyond Patroni, a principal may name its scheme as "scheme:id" for world, auth, digest, ip and
// sasl (and x509): "digest:user:password" takes the password in clear, as auth_data does, and
// stores ZooKeeper's digest of it; an id that already is such a digest is kept as it is.
func ParseACLs(set map[string][]string) ([]zk.ACL, error) {
	principals := make([]string, 0, len(set))
	for p := range set {
		principals = append(principals, p)
	}
	sort.Strings(principals)
	acls := make([]zk.ACL, 0, len(set))
	for _, p := range principals {
		var perms int32
		for _, name := range set[p] {
			v, ok := permNames[strings.ToUpper(strings.TrimSpace(name))]
			if !ok {
				return nil, fmt.Errorf("zookeeper set_acls %q: unknown permission %q (want READ, WRITE, CREATE, DELETE, ADMIN or ALL)", p, name)
			}
			perms |= v
		}
		if perms == 0 {
			return nil, fmt.Errorf("zookeeper set_acls %q: no permissions", p)
		}
		scheme, id := "x509", p
		if s, rest, ok := strings.Cut(p, ":"); ok && aclSchemes[strings.ToLower(s)] {
			scheme, id = strings.ToLower(s), rest
		}
		if scheme == "digest" {
			user, pass, ok := strings.Cut(id, ":")
			if !ok || user == "" {
				return nil, fmt.Errorf("zookeeper set_acls %q: want digest:user:password", p)
			}
			if !isDigest(pass) {
				id = user + ":" + digest(user, pass)
			}
		}
		if id == "" {
			return nil, fmt.Errorf("zookeeper set_acls %q: empty id", p)
		}
		acls = append(acls, zk.ACL{Perms: perms, Scheme: scheme, ID: id})
	}
	return acls, nil
}

// digest is ZooKeeper's digest of a user's password: base64(sha1("user:password")).
func digest(user, password string) string {
	h := sha1.Sum([]byte(user + ":" + password))
	return base64.StdEncoding.EncodeToString(h[:])
}

// isDigest says whether s already is a digest (the base64 of a SHA-1), as zkCli's getAcl shows it.
func isDigest(s string) bool {
	if len(s) != 28 || !strings.HasSuffix(s, "=") {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) == sha1.Size
}
