    for step in range(n - 1):
        send_index, receive_index = (r - step) % n, (r - step - 1) % n
        # received straight into place, as in the allgather: the partial sum there is overwritten
        comm.Sendrecv(chunks[send_index], dest=right, sendtag=TAG, recvbuf=chunks[receive_index], source=left, recvtag=TAG)
    return (r + 1) % n
