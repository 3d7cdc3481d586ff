package kubestate

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/cloister-dev/cloister/seal"
	"github.com/cloister-dev/cloister/store"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Keys is a store.KeyShelf in one Secret, NAME-keys beside the state's manifest Secret NAME:
// one data entry "key.<seal key ID>" per seal key that holds a copy of the data key, and the
// recovery record under "recovery". Every change is a compare-and-swap on the Secret's
// resourceVersion, retried on conflicts. It holds only sealed keys and the record (which is
// plain text by design: it is needed when no key can be unsealed, and is authenticated by the
// recovered state).
type Keys struct {
	r *Remote
}

var _ store.KeyShelf = (*Keys)(nil)

const (
	keysSuffix    = "-keys"
	dataKeyPrefix = "key."
	dataRecovery  = "recovery"
	// maxKeyCopies bounds the copies kept: one per CPU a replica ever ran on. Past it a new
	// CPU's replica still gets the key from a peer, but keeps its copy only locally.
	maxKeyCopies = 256
	// maxSealedKey bounds one sealed copy (a 32-byte key sealed: 61 bytes today).
	maxSealedKey = 1 << 10
	// maxKeyAttempts bounds the retries of a conflicting update.
	maxKeyAttempts = 20
)

// keyIDPattern is a seal key ID (seal's KeyID: 32 hex digits).
var keyIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Keys returns the shelf of the state's data key copies.
func (r *Remote) Keys() *Keys { return &Keys{r: r} }

func (k *Keys) name() string { return k.r.name + keysSuffix }

// LoadKeys implements store.KeyShelf. A copy or record of the wrong size is refused with an
// error naming it: a shelf edited by hand must not silently lose a replica's copy. An entry of
// another name is skipped with a warning: it is no copy, and refusing the whole shelf for it
// would let one stray entry (a newer version's, an annotation tool's) stop every replica.
func (k *Keys) LoadKeys(ctx context.Context) (store.KeyCopies, error) {
	s, err := k.get(ctx)
	if err != nil || s == nil {
		return store.KeyCopies{}, err
	}
	c, skipped, err := parseKeys(s.Data)
	if len(skipped) > 0 && err == nil {
		k.r.log.Warn("kubestate: skipped entries of the key shelf Secret that are not key copies", "secret", k.r.ns+"/"+k.name(), "entries", skipped,
			"expected", fmt.Sprintf("%q or %q followed by a seal key ID of 32 hex digits", dataRecovery, dataKeyPrefix))
	}
	return c, err
}

// maxSkipped bounds the unknown entry names a warning lists.
const maxSkipped = 16

// parseKeys checks a shelf Secret's data; skipped names (at most maxSkipped) the entries that
// are neither a copy nor the record.
func parseKeys(data map[string][]byte) (_ store.KeyCopies, skipped []string, _ error) {
	out := store.KeyCopies{Sealed: map[string][]byte{}}
	var errs []error
	for name, v := range data {
		switch {
		case name == dataRecovery:
			if len(v) > store.MaxRecoveryRecord {
				errs = append(errs, fmt.Errorf("%q is %d bytes, expected at most %d", name, len(v), store.MaxRecoveryRecord))
				continue
			}
			out.Recovery = v
		case strings.HasPrefix(name, dataKeyPrefix) && keyIDPattern.MatchString(name[len(dataKeyPrefix):]):
			if len(v) < seal.Overhead || len(v) > maxSealedKey {
				errs = append(errs, fmt.Errorf("%q is %d bytes, expected a sealed key of %d to %d", name, len(v), seal.Overhead, maxSealedKey))
				continue
			}
			out.Sealed[name[len(dataKeyPrefix):]] = v
		default:
			if len(skipped) < maxSkipped {
				skipped = append(skipped, fmt.Sprintf("%.64q", name))
			}
		}
	}
	if len(out.Sealed) > maxKeyCopies {
		errs = append(errs, fmt.Errorf("%d key copies, expected at most %d", len(out.Sealed), maxKeyCopies))
	}
	if err := errors.Join(errs...); err != nil {
		return store.KeyCopies{}, nil, fmt.Errorf("kubestate: the key shelf Secret: %w", err)
	}
	slices.Sort(skipped)
	return out, skipped, nil
}

// PutKey implements store.KeyShelf.
func (k *Keys) PutKey(ctx context.Context, id string, sealed []byte) error {
	if !keyIDPattern.MatchString(id) {
		return fmt.Errorf("kubestate: seal key ID %q, expected 32 lower-case hex digits", id)
	}
	if len(sealed) < seal.Overhead || len(sealed) > maxSealedKey {
		return fmt.Errorf("kubestate: a sealed key of %d bytes, expected %d to %d", len(sealed), seal.Overhead, maxSealedKey)
	}
	return k.update(ctx, func(data map[string][]byte) error {
		if _, ok := data[dataKeyPrefix+id]; !ok {
			if n := countCopies(data); n >= maxKeyCopies {
				return fmt.Errorf("kubestate: the key shelf holds %d copies already, the most it keeps; delete the copies of CPUs no replica runs on any more", n)
			}
		}
		data[dataKeyPrefix+id] = sealed
		return nil
	})
}

func countCopies(data map[string][]byte) int {
	n := 0
	for name := range data {
		if strings.HasPrefix(name, dataKeyPrefix) {
			n++
		}
	}
	return n
}

// PutRecovery implements store.KeyShelf.
func (k *Keys) PutRecovery(ctx context.Context, record []byte) error {
	if len(record) > store.MaxRecoveryRecord {
		return fmt.Errorf("kubestate: a recovery record of %d bytes, expected at most %d", len(record), store.MaxRecoveryRecord)
	}
	return k.update(ctx, func(data map[string][]byte) error {
		if record == nil {
			delete(data, dataRecovery)
		} else {
			data[dataRecovery] = record
		}
		return nil
	})
}

// get returns the shelf Secret, or nil if there is none.
func (k *Keys) get(ctx context.Context) (*corev1.Secret, error) {
	k.r.reads.Add(1)
	s, err := k.r.secrets().Get(ctx, k.name(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, k.r.apiError("reading", k.name(), err)
	}
	return s, nil
}

// update applies change to the shelf's data by compare-and-swap, creating the Secret if needed.
func (k *Keys) update(ctx context.Context, change func(map[string][]byte) error) error {
	for range maxKeyAttempts {
		s, err := k.get(ctx)
		if err != nil {
			return err
		}
		data := map[string][]byte{}
		if s != nil {
			for n, v := range s.Data {
				data[n] = v
			}
		}
		if err := change(data); err != nil {
			return err
		}
		k.r.writes.Add(1)
		if s == nil {
			s = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: k.name(), Namespace: k.r.ns, Labels: k.r.labels("keys")},
				Type:       corev1.SecretTypeOpaque,
				Data:       data,
			}
			_, err = k.r.secrets().Create(ctx, s, metav1.CreateOptions{})
		} else {
			s = s.DeepCopy()
			s.Data = data
			_, err = k.r.secrets().Update(ctx, s, metav1.UpdateOptions{})
		}
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
			continue // another replica changed it: apply the change to the new one
		default:
			return k.r.apiError("writing", k.name(), err)
		}
	}
	return fmt.Errorf("%w: kubestate: the key shelf Secret %s/%s kept changing under %d attempts", store.ErrUnavailable, k.r.ns, k.name(), maxKeyAttempts)
}
