/* The plain C baseline: a libnetfilter_queue loop that accepts every packet, one verdict per packet.
 *
 *   cc -O2 -o c_loop bench/c_loop.c -lnetfilter_queue
 *   c_loop QUEUE        (run inside the namespace whose queue it serves; SIGTERM/SIGINT stop it)
 *
 * Same queue settings as venetfilter's backends: COPY_PACKET of 128 bytes, 4096 packets, an 8 MiB
 * receive buffer, NETLINK_NO_ENOBUFS. No GSO flag (what a first C loop does). bench/e2e.py compiles
 * it at run time and measures its user CPU per packet as the "plain C loop" baseline.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

static volatile sig_atomic_t stopping;
static uint64_t packets;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data)
{
    (void)msg; (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (ph == NULL)
        return 0;
    packets++;
    return nfq_set_verdict(qh, ntohl(ph->packet_id), NF_ACCEPT, 0, NULL);
}

int main(int argc, char **argv)
{
    int queue = argc > 1 ? atoi(argv[1]) : 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;  /* no SA_RESTART: recv returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct nfq_handle *h = nfq_open();
    if (h == NULL) { perror("nfq_open"); return 1; }
    struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)queue, on_packet, NULL);
    if (qh == NULL) { perror("nfq_create_queue"); return 1; }
    if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 128) < 0) { perror("nfq_set_mode"); return 1; }
    nfq_set_queue_maxlen(qh, 4096);
    int fd = nfq_fd(h), one = 1, size = 8 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    fprintf(stderr, "c_loop: bound to queue %d\n", queue);

    static char buf[65536] __attribute__((aligned));
    while (!stopping) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR || errno == ENOBUFS)
                continue;
            perror("recv");
            break;
        }
        nfq_handle_packet(h, buf, (int)n);
    }
    nfq_destroy_queue(qh);
    nfq_close(h);
    printf("%llu\n", (unsigned long long)packets);
    return 0;
}
