    for step in range(n - 1):
        send_index, receive_index = (r - step) % n, (r - step) % n
        comm.Sendrecv(chunks[send_index], dest=right, sendtag=TAG, recvbuf=chunks[receive_index], source=left, recvtag=TAG)
