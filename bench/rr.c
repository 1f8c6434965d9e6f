/* TCP request/response: 1-byte ping-pong over one connection, per-round-trip times in ns.
 *   rr server PORT           — echo every byte back (one client)
 *   rr client ADDR PORT N    — N round trips; prints the p50 and p90 in microseconds
 *   rr crr-server PORT       — per connection: echo one byte, then close (TIME_WAIT stays here)
 *   rr crr ADDR PORT N       — N short connections (connect, 1 byte each way, close); prints connections/s */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

int main(int argc, char **argv) {
	int one = 1;
	char c = 'x';
	if (argc == 3 && !strcmp(argv[1], "server")) {
		int s = socket(AF_INET6, SOCK_STREAM, 0);
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[2])), .sin6_addr = in6addr_any };
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(s, (void *)&a, sizeof a) || listen(s, 1)) { perror("listen"); return 1; }
		int conn = accept(s, NULL, NULL);
		setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		while (read(conn, &c, 1) == 1) if (write(conn, &c, 1) != 1) break;
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "client")) {
		int n = atoi(argv[4]);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		inet_pton(AF_INET, argv[2], &a.sin_addr);
		int s = socket(AF_INET, SOCK_STREAM, 0);
		for (int i = 0; connect(s, (void *)&a, sizeof a); i++) {
			if (i > 50) { perror("connect"); return 1; }
			usleep(20000);
		}
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		long *t = calloc(n, sizeof *t);
		for (int i = 0; i < n; i++) {
			long t0 = now_ns();
			if (write(s, &c, 1) != 1 || read(s, &c, 1) != 1) { perror("rr"); return 1; }
			t[i] = now_ns() - t0;
		}
		qsort(t, n, sizeof *t, cmp);
		printf("%.2f %.2f\n", t[n / 2] / 1000.0, t[n * 9 / 10] / 1000.0);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "crr-server")) {
		int s = socket(AF_INET6, SOCK_STREAM, 0);
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[2])), .sin6_addr = in6addr_any };
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(s, (void *)&a, sizeof a) || listen(s, 128)) { perror("listen"); return 1; }
		for (;;) {
			int conn = accept(s, NULL, NULL);
			if (conn < 0) continue;
			if (read(conn, &c, 1) == 1 && write(conn, &c, 1) != 1) perror("write");
			close(conn);
		}
	}
	if (argc == 5 && !strcmp(argv[1], "crr")) {
		int n = atoi(argv[4]);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		inet_pton(AF_INET, argv[2], &a.sin_addr);
		long t0 = now_ns();
		for (int i = 0; i < n; i++) {
			int s = socket(AF_INET, SOCK_STREAM, 0);
			for (int k = 0; connect(s, (void *)&a, sizeof a); k++) {
				if (k > 50) { perror("connect"); return 1; }
				close(s);
				usleep(20000);
				s = socket(AF_INET, SOCK_STREAM, 0);
			}
			if (write(s, &c, 1) != 1 || read(s, &c, 1) != 1) { perror("crr"); return 1; }
			while (read(s, &c, 1) > 0) {}
			close(s);
		}
		printf("%.0f\n", n / ((now_ns() - t0) / 1e9));
		return 0;
	}
	fprintf(stderr, "usage: rr server PORT | rr client ADDR PORT N\n");
	return 2;
}
