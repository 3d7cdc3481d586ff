// Command pause is the pod sandbox ("pause") program of the nodes internal/kubetest runs, and
// a minimal workload for their tests. It is built static (CGO_ENABLED=0) and packed alone into
// an image; it needs nothing from the image but itself.
//
// Without flags it waits for SIGTERM or SIGINT and exits 0, which is all a sandbox does. With
// -say it first prints that line; with -listen it also serves HTTP on that address, answering
// every request with the -say line.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	say := flag.String("say", "", "print this line at start, and answer HTTP requests with it")
	listen := flag.String("listen", "", "serve HTTP on this address (host:port)")
	flag.Parse()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if *say != "" {
		fmt.Println(*say)
	}
	if *listen != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pause:", err)
			os.Exit(1)
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintln(w, *say)
			}),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       5 * time.Second,
			WriteTimeout:      5 * time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    1 << 14,
		}
		go srv.Serve(ln)
	}
	<-stop
}
