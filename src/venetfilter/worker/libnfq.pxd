# The parts of libnetfilter_queue (and the kernel headers it ships) that the native backend uses.

from libc.stdint cimport uint8_t, uint16_t, uint32_t


cdef extern from "<libnetfilter_queue/linux_nfnetlink_queue.h>" nogil:
    enum nfqnl_config_mode:
        NFQNL_COPY_NONE
        NFQNL_COPY_META
        NFQNL_COPY_PACKET

    struct nfqnl_msg_packet_hdr:
        uint32_t packet_id      # network byte order
        uint16_t hw_protocol
        uint8_t hook

    enum:
        NFQA_CFG_F_FAIL_OPEN
        NFQA_CFG_F_GSO


cdef extern from "<libnetfilter_queue/libnetfilter_queue.h>" nogil:
    struct nfq_handle:
        pass
    struct nfq_q_handle:
        pass
    struct nfq_data:
        pass
    struct nfgenmsg:
        pass
    struct nfnl_handle:
        pass

    ctypedef int nfq_callback(nfq_q_handle *qh, nfgenmsg *nfmsg, nfq_data *nfad, void *data) noexcept nogil

    nfq_handle *nfq_open()
    int nfq_close(nfq_handle *h)
    int nfq_fd(nfq_handle *h)
    nfnl_handle *nfq_nfnlh(nfq_handle *h)
    nfq_q_handle *nfq_create_queue(nfq_handle *h, uint16_t num, nfq_callback *cb, void *data)
    int nfq_destroy_queue(nfq_q_handle *qh)
    int nfq_handle_packet(nfq_handle *h, char *buf, int len)
    int nfq_set_mode(nfq_q_handle *qh, uint8_t mode, uint32_t range)
    int nfq_set_queue_maxlen(nfq_q_handle *qh, uint32_t queuelen)
    int nfq_set_queue_flags(nfq_q_handle *qh, uint32_t mask, uint32_t flags)
    int nfq_set_verdict(nfq_q_handle *qh, uint32_t id, uint32_t verdict, uint32_t data_len, const unsigned char *buf)
    int nfq_set_verdict_batch(nfq_q_handle *qh, uint32_t id, uint32_t verdict)
    nfqnl_msg_packet_hdr *nfq_get_msg_packet_hdr(nfq_data *nfad)
    int nfq_get_payload(nfq_data *nfad, unsigned char **data)
    uint32_t nfq_get_indev(nfq_data *nfad)
    uint32_t nfq_get_outdev(nfq_data *nfad)


cdef extern from "<libnfnetlink/libnfnetlink.h>" nogil:
    unsigned int nfnl_rcvbufsiz(const nfnl_handle *h, unsigned int size)


# <linux/netfilter.h> clashes with <netinet/in.h>; the verdict values are fixed kernel ABI.
cdef enum:
    NF_DROP = 0
    NF_ACCEPT = 1
