/* connect() latency, two destinations interleaved op by op in one process (same socket
 * options, same CPU, same moment): a Service address and the backend's own address.
 *   svcconn ADDR_A PORT_A ADDR_B PORT_B N
 * N rounds of: socket, connect to A, close; socket, connect to B, close (the order of A and B
 * alternates by round). close() resets (SO_LINGER 0): no TIME_WAIT piles up on the client.
 * Prints the p50 and p90 of connect() for A, then for B, in microseconds. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static long now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

static long once(const struct sockaddr_in *a) {
	struct linger l = { .l_onoff = 1, .l_linger = 0 };
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0) { perror("socket"); exit(1); }
	long t0 = now_ns();
	if (connect(s, (const void *)a, sizeof *a)) { perror("connect"); exit(1); }
	long t = now_ns() - t0;
	setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	close(s);
	return t;
}

int main(int argc, char **argv) {
	if (argc != 6) {
		fprintf(stderr, "usage: svcconn ADDR_A PORT_A ADDR_B PORT_B N\n");
		return 2;
	}
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	struct sockaddr_in b = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[4])) };
	if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1 || inet_pton(AF_INET, argv[3], &b.sin_addr) != 1) {
		fprintf(stderr, "bad address\n");
		return 2;
	}
	int n = atoi(argv[5]);
	long *ta = calloc(n, sizeof *ta), *tb = calloc(n, sizeof *tb);
	/* warm-up: route, neighbour and the server's accept loop */
	for (int i = 0; i < 50; i++) { once(&a); once(&b); }
	for (int i = 0; i < n; i++) {
		if (i & 1) { tb[i] = once(&b); ta[i] = once(&a); }
		else { ta[i] = once(&a); tb[i] = once(&b); }
	}
	qsort(ta, n, sizeof *ta, cmp);
	qsort(tb, n, sizeof *tb, cmp);
	printf("%.2f %.2f %.2f %.2f\n", ta[n / 2] / 1000.0, ta[n * 9 / 10] / 1000.0, tb[n / 2] / 1000.0, tb[n * 9 / 10] / 1000.0);
	return 0;
}
