package views

import (
	"net/http"
	"slices"

	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

// fail answers an error in the read side's format.
func fail(w http.ResponseWriter, status int, msg string) { writeJSON(w, status, problem{Error: msg}) }

// readableStudies narrows studies to those k may read (all of them for a
// key of every study).
func readableStudies(k apikeys.Key, studies []string) []string {
	if k.MayActFor(apikeys.AllStudies) {
		return studies
	}
	return slices.DeleteFunc(slices.Clone(studies), func(s string) bool { return !k.MayActFor(s) })
}
