package hotcache_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/redis/hotcache"
)

type SiteDashboard struct {
	Site       string
	OpenAlerts int
}

// A site dashboard read through the cache. The output is the same when
// Redis is down: Get then answers from the store.
func Example() {
	cfg, err := config.FromOSEnv()
	if err != nil {
		fmt.Println(err)
		return
	}
	rdb := connect.Redis(cfg)
	defer rdb.Close()

	sites := map[string]SiteDashboard{"SITE-012": {Site: "SITE-012", OpenAlerts: 3}} // the backing store
	siteID := regexp.MustCompile(`^SITE-[0-9]{3}$`)
	dashboards, err := hotcache.New(rdb, "eprostream:"+cfg.Env+":", hotcache.Config[SiteDashboard]{
		Name: "example_site_dashboard",
		Valid: func(id string) error {
			if !siteID.MatchString(id) {
				return errors.New("site ids look like SITE-012")
			}
			return nil
		},
		TTL:         time.Minute,
		NegativeTTL: 10 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	dashboard := func(id string) hotcache.Loader[SiteDashboard] {
		return func(ctx context.Context) (SiteDashboard, error) {
			d, ok := sites[id] // a ClickHouse query in real life
			if !ok {
				return SiteDashboard{}, hotcache.ErrNotFound
			}
			return d, nil
		}
	}

	ctx := context.Background()
	for _, id := range []string{"SITE-012", "SITE-012", "SITE-999", "../admin"} {
		d, err := dashboards.Get(ctx, id, dashboard(id))
		fmt.Printf("%s: %+v %v\n", id, d, err)
	}
	_ = dashboards.Invalidate(ctx, "SITE-012")
	_ = dashboards.Invalidate(ctx, "SITE-999")
	// Output:
	// SITE-012: {Site:SITE-012 OpenAlerts:3} <nil>
	// SITE-012: {Site:SITE-012 OpenAlerts:3} <nil>
	// SITE-999: {Site: OpenAlerts:0} hotcache: not found: example_site_dashboard SITE-999
	// ../admin: {Site: OpenAlerts:0} hotcache: invalid key: site ids look like SITE-012
}
